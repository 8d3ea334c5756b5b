"""`svcgen update` and `svcgen status`: keep generated repos on their template's releases."""
