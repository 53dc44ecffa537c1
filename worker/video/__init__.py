"""Video frames for picscore: OSS's ``video/snapshot`` on the embedded server (:mod:`.snapshot`).

Decoding is FFmpeg's, through PyAV (https://pyav.basswood-io.com): the one well-kept decoder of
H.264 and H.265 that installs from PyPI with its libraries inside the wheel.
"""
