"""The standard pix2pix datasets: where they live, what they translate, which way is which.

Every archive ``<name>.tar.gz`` unpacks to a folder ``<name>/`` with ``train/``, ``val/`` (and
for most, ``test/``) splits of aligned images: A on the left half, B on the right half. Image
counts are the ones the pix2pix authors give; archive sizes are not recorded here ("unknown")
because no trustworthy figure was at hand, and the server reports the exact size when the
download starts.

Checksums: ``sha256`` is recorded for an archive only once a download of it has been verified
by hand (the digest a download must match, whatever the mirror says). None is recorded yet:
the mirror could not be reached from the machines this project is built on, so no archive
could be verified, and a digest copied from elsewhere would be a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p_deploy.errors import DataError

# The host the canonical PyTorch pix2pix repository downloads from (its script says http://;
# other public code fetches the same archives from it over https, which is used here so that
# nobody on the network path can swap the archive; not verified from here: the host cannot be
# reached from the machines this project is built on). The older
# people.eecs.berkeley.edu/~tinghuiz/... address returns 404.
DEFAULT_MIRROR = "https://efrosgans.eecs.berkeley.edu/pix2pix/datasets"


@dataclass(frozen=True)
class CatalogEntry:
    """One standard dataset.

    Attributes:
        name: archive stem (``facades`` -> ``facades.tar.gz``, unpacking to ``facades/``).
        a: what the left half (A) of each image shows.
        b: what the right half (B) shows.
        usual_direction: the direction of the usual task (``AtoB`` or ``BtoA``).
        usual_task: the usual task in words, e.g. ``label map -> photo``.
        images: how many images the authors describe.
        size: approximate archive size, or ``unknown``.
        sha256: the archive's digest, once a download was verified by hand (None: not known;
            the mirror's own ``NAME.tar.gz.sha256`` is then checked when it ships one).
    """

    name: str
    a: str
    b: str
    usual_direction: str
    usual_task: str
    images: str
    size: str = "unknown"
    sha256: str | None = None

    def archive_name(self) -> str:
        return f"{self.name}.tar.gz"


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        name="facades",
        a="photo",
        b="label map",
        usual_direction="BtoA",
        usual_task="label map -> photo",
        images="400 images (CMP Facades)",
    ),
    CatalogEntry(
        name="cityscapes",
        a="photo",
        b="semantic label map",
        usual_direction="BtoA",
        usual_task="label map -> photo",
        images="2975 training images (Cityscapes)",
    ),
    CatalogEntry(
        name="maps",
        a="aerial photo",
        b="map",
        usual_direction="AtoB",
        usual_task="aerial photo -> map",
        images="1096 training images (Google Maps)",
    ),
    CatalogEntry(
        name="edges2shoes",
        a="edge map",
        b="photo",
        usual_direction="AtoB",
        usual_task="edges -> photo",
        images="50k training images (UT Zappos50K)",
    ),
    CatalogEntry(
        name="edges2handbags",
        a="edge map",
        b="photo",
        usual_direction="AtoB",
        usual_task="edges -> photo",
        images="137k images (Amazon handbags, iGAN)",
    ),
    CatalogEntry(
        name="night2day",
        a="night photo",
        b="day photo",
        usual_direction="AtoB",
        usual_task="night -> day",
        images="about 20k images (Transient Attributes)",
    ),
)


def find_entry(name: str) -> CatalogEntry:
    """The catalog entry called ``name``.

    Raises:
        DataError: unknown name (the sentence lists the known ones).
    """
    for entry in CATALOG:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in CATALOG)
    raise DataError(f"{name!r}: unknown dataset (known: {known}).")
