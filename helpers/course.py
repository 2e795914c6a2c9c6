"""The course's settings in one place: where the public repository lives (for Colab/Kaggle links)."""

# The public GitHub repository of this course. Change it here only, then run
#   python -m helpers.bundle --sync
# to rewrite the Colab/Kaggle badges and the set-up cells of every notebook.
REPOSITORY = "https://github.com/keras-gpu-course/keras-gpu-course"
BRANCH = "main"


def github_path() -> str:
    """'owner/name' of REPOSITORY."""
    return REPOSITORY.rstrip("/").removeprefix("https://github.com/")


def colab_url(notebook: str) -> str:
    return f"https://colab.research.google.com/github/{github_path()}/blob/{BRANCH}/notebooks/{notebook}"


def kaggle_url(notebook: str) -> str:
    return f"https://kaggle.com/kernels/welcome?src={REPOSITORY}/blob/{BRANCH}/notebooks/{notebook}"
