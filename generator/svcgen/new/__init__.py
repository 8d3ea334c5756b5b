"""`svcgen new`: ask copier.yml's questions, render the project with Copier, move it into place."""
