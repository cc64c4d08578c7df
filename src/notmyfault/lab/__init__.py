"""``notmyfault lab``: a disposable QEMU guest that runs a real distribution kernel with myfault.ko."""
