"""Code shared by several test modules (doubles, small models, hand-built results)."""
