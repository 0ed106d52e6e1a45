"""The only package that touches the JOSE library (joserfc) and raw signature primitives."""
