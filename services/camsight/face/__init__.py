"""The face service: face analyzers on every frame, identities from the enrolled gallery, enrollment.

* :mod:`.settings`: ``services.face`` (detector, thresholds, crops, privacy);
* :mod:`.matching`: the in-memory gallery index and Euclidean matching;
* :mod:`.gallery`: the ``gallery`` KV bucket and ``faces`` object store, watched for changes;
* :mod:`.crops`: small JPEG face crops, blurred for unknown faces on request;
* :mod:`.enroll`: the enrollment endpoint's logic;
* :mod:`.service`: :class:`~camsight.face.service.FaceService`.
"""
