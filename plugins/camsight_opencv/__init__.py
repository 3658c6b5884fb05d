"""Built-in camsight analyzers (camsight_opencv); registered through the camsight entry-point group."""
