"""Learning to label, for people (issue 36): a project folder saved as a REFER dataset after every answer
(``project``), clicks → mask through the promptable mask model and the simulated annotator (``clicks``),
what to annotate next (``strategies``), one tab of the labeling page (``session``) and the page (``page``),
and the ``l2l label`` commands (``commands``)."""
