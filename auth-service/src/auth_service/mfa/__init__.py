"""The second factor: TOTP (RFC 6238) with recovery codes, and the MFA grant's sign-in."""
