"""The central side of fedsynth: launch rounds, pool synthetic sets, train and publish the shared model."""
