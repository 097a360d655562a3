"""edge: rehearse client-certificate (mTLS) enforcement on a simulated bring-your-own-CA edge."""

__version__ = "0.1.0"
