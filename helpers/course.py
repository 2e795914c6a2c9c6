"""Where the course lives in public: the one setting behind every Colab/Kaggle badge and every fetch.

While REPOSITORY is empty (the course has no public home yet), the notebooks carry no badge and fetch
nothing: their header says how to open them on Colab or Kaggle from a bundled copy, which carries the
helpers itself (`python -m helpers.bundle --out DIR`, works offline). Whoever publishes the course sets
REPOSITORY and RELEASE (a tag of that repository), then runs

    python -m helpers.bundle --sync

which writes the badges (pointing at that tag) and makes each set-up cell, on Colab or Kaggle, fetch the
helpers of that tag: a notebook saved from release v1 keeps working with v1's helpers.
"""

REPOSITORY = ""   # e.g. "https://github.com/OWNER/NAME"; empty: not published
RELEASE = ""      # e.g. "v1.0": the tag whose notebooks the badges open and whose helpers they fetch


def published(repository: str | None = None, release: str | None = None) -> bool:
    """True when both the address and the release are set; an address without a release is an error."""
    repository = REPOSITORY if repository is None else repository
    release = RELEASE if release is None else release
    if repository and not release:
        raise ValueError("helpers/course.py: REPOSITORY is set but RELEASE is empty; set the release tag too "
                         "(notebooks fetch the helpers of that tag)")
    if repository and not repository.startswith("https://github.com/"):
        raise ValueError(f"helpers/course.py: REPOSITORY={repository!r} must be https://github.com/OWNER/NAME")
    return bool(repository)


def github_path(repository: str | None = None) -> str:
    """'owner/name' of the repository."""
    repository = REPOSITORY if repository is None else repository
    return repository.rstrip("/").removeprefix("https://github.com/")


def colab_url(notebook: str, repository: str | None = None, release: str | None = None) -> str:
    release = RELEASE if release is None else release
    return f"https://colab.research.google.com/github/{github_path(repository)}/blob/{release}/notebooks/{notebook}"


def kaggle_url(notebook: str, repository: str | None = None, release: str | None = None) -> str:
    repository = (REPOSITORY if repository is None else repository).rstrip("/")
    release = RELEASE if release is None else release
    return f"https://kaggle.com/kernels/welcome?src={repository}/blob/{release}/notebooks/{notebook}"
