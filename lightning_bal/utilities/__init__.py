"""Small shared helpers: argument checks and distributed utilities."""
