"""`cogsync serve`: an embedded backend speaking AppSync's and Cognito Identity's wire protocols."""
