"""Built-in camsight analyzers (camsight_torch); registered through the camsight entry-point group."""
