# The part of protobuf's Python API that generated modules and their stubs
# use, typed for mypy: Debian has no stubs for python3-protobuf.
