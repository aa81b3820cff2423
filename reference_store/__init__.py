"""Reference event stores that pass the aether conformance suite.

They use only the kit's public API; the kit never imports them.
"""
