"""Use cases that join independent packages (dev + ros2): the layer above them."""
