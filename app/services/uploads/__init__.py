"""Dataset uploads of any size: parsed in chunks from a file on disk into the canonical
layout (x as a float32 C-order ``.npy`` file, y as an array), never held whole in memory."""
