"""`svcgen rehearse`: run a generated service's Helm chart locally, the way a kubelet would."""
