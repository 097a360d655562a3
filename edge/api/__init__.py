"""The control-plane API of `edge serve`: Cloudflare v4 shapes over the ControlPlane task."""
