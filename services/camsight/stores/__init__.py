"""The owners of the shared stores: one module per store that several services write.

A store written by more than one service keeps its invariants here, once:
the face gallery (a record and its thumbnails come and go together) and the
camera registry (revision-checked writes; an entry a Camera resource owns is
changed only by the controller). Services call these instead of touching the
buckets, and still never import each other.
"""
