"""The batch engine every bucket-wide command shares (``picscore run`` today; covers, filter,
thumbnails and report build on it): a source puts objects on a bounded queue, N consumers run one
operation per object through a paced, retrying OSS caller, and a writer commits rows in parts
with a SQLite checkpoint, so a crash or SIGTERM resumes exactly once. See :mod:`.engine`."""
