"""The stand-in's cupyx: only what gpubp uses (scipy.sparse CSR matrices)."""
