"""RS256 signing keys: generation, encrypted storage, the rotation schedule, the key ring."""
