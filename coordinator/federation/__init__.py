"""The coordinator's side of the federation: certificates, the SuperLink, site registry, the ServerApp."""
