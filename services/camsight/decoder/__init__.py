"""The decoder service: camera sources in, resized JPEG frames out on ``frames.<camera>``.

* :mod:`.settings`: the ``services.decoder`` configuration section.
* :mod:`.sources`: opening files, network streams, webcams and image folders (blocking).
* :mod:`.frames`: fps sampling, resizing and JPEG encoding (pure functions).
* :mod:`.status`: per-camera status, KV record, state-change events and metrics.
* :mod:`.camera`: one camera's decode thread and publisher task.
* :mod:`.service`: the registry watch, camera ownership over replicas, the service.
"""
