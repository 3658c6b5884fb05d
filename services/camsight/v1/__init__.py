"""Generated protobuf and gRPC code for camsight.v1 (see proto/)."""
