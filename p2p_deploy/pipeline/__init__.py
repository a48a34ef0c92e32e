"""The run pipeline: reader thread -> bounded queue -> batcher + runner -> bounded queue ->
writer thread. Order preserved, memory bounded, nothing lost (see :mod:`.run`)."""
