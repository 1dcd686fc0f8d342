"""Learning to label, for people (issue 36): correcting a mask with clicks through the promptable mask
model, and the simulated annotator that measures it (``clicks``)."""
