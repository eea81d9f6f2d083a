"""The search: samplers, architecture parameters, the mixed layer, the
supernet, space proposals, repair, derivation, the search library, its
callbacks and plots."""
