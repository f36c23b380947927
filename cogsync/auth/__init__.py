"""Client-side identity and request signing (Cognito Identity, SigV4)."""
