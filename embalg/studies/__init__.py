"""One-command studies of the embedding-operators thread (cone, compose, props, rotations, align)."""
