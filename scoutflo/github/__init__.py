"""GitHub: the layer between the charts and the components that talks to GitHub.

`api` (one commit of many files through the Git Data API, safe to repeat) and `adoption` (whether a
repository of an app's name is this tenant's: its mark, descriptions, adopt or refuse) →
`repository` (an app's repository created, adopted again or archived in one write); `repo_files`
(what the program commits to an app's repository: the CI pipeline from `scoutflo/scaffold/`, the
README, a template chart). The dynamic providers in components/repo_commit.py and
components/app_repository.py call it; nothing here registers a Pulumi resource.
"""
