"""The Kubernetes controller: Camera resources (camsight.io/v1) into the camera registry.

``camsight serve controller`` watches ``cameras.camsight.io`` objects, writes
each one's camera into the ``cameras`` KV bucket (the registry every decoder
reads) and copies the decoder's live status from ``camera_status`` back to the
resource's status subresource, so ``kubectl get cameras`` shows state and fps.
"""
