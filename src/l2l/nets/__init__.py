"""The networks models are built from: stage-wise image encoders, text encoders, the mask decoder.

Below ``foundation`` and ``models`` (docs/architecture.md, "Floors"): the stand-ins and the students
both build on these, and nothing here knows either of them.
"""
