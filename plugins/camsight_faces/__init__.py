"""Built-in camsight analyzers (camsight_faces); registered through the camsight entry-point group."""
