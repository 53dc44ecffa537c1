"""The batch job behind ``picscore run``: producer → consumers → sink, with a checkpoint.

Objects flow left to right; each stage owns one job; every queue between stages is bounded
(see ../shared DESIGN and the README). The pipeline speaks only the OSS API.
"""
