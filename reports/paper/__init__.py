"""Paper reproductions: the FuseMax artifact's tables recomputed and compared."""
