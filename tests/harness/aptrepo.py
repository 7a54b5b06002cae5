"""A local apt repository, signed, with one suite per Debian release.

``AptRepo(root)`` generates a signing key in a temporary ``GNUPGHOME``; ``publish()`` lays
out ``pool/`` and ``dists/<suite>/main/binary-<arch>/Packages`` for each suite (each
listing only its own release's builds), signs every ``Release`` (``InRelease`` and
``Release.gpg``) with ``apt-ftparchive`` and gpg. A root file system reads it through
``file:`` and checks it against that key (``Signed-By:``), like any mirror: the layout of
the repository users add (docs/packaging.md), ``dists/bookworm`` and ``dists/trixie``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.cmd import run_checked
from tests.harness.sysbox import BOX_PATH

REPO_IN_ROOT = "/srv/ampd-repo"
KEYRING_IN_ROOT = "/etc/apt/keyrings/ampd-test.gpg"
SOURCES_IN_ROOT = "/etc/apt/sources.list.d/ampd-test.sources"
# apt-get update for the test repository alone (the Debian mirror is not needed, and in a
# box, which has only loopback, not reachable).
APT_UPDATE_TEST_REPO = (
    "apt-get",
    "update",
    "-qq",
    f"-o=Dir::Etc::SourceList={SOURCES_IN_ROOT}",
    "-o=Dir::Etc::SourceParts=-",
    "-o=APT::Get::List-Cleanup=0",
)


@dataclass
class AptRepo:
    """A signed apt repository in ``root`` (``dists/<suite>/main``, ``pool/main``)."""

    root: Path
    gnupghome: Path = field(init=False)
    fingerprint: str = field(init=False)
    suites: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        self.gnupghome = Path(tempfile.mkdtemp(prefix="ampd-gnupg-"))
        self.gnupghome.chmod(0o700)
        self._gpg(
            "--passphrase",
            "",
            "--quick-generate-key",
            "ampd test repository <ampd-test@localhost>",
            "ed25519",
            "sign",
            "1d",
        )
        listing = self._gpg("--with-colons", "--list-secret-keys").stdout
        self.fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        self.root.mkdir(parents=True, exist_ok=True)
        self.keyring.write_bytes(
            subprocess.run(
                ["gpg", "--export", self.fingerprint],
                env=self._gpg_env(),
                capture_output=True,
                check=True,
            ).stdout
        )

    @property
    def keyring(self) -> Path:
        return self.root / "ampd-test.gpg"

    def _gpg_env(self) -> dict[str, str]:
        return {"PATH": BOX_PATH, "GNUPGHOME": str(self.gnupghome), "LANG": "C.UTF-8"}

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_checked(
            ["gpg", "--batch", "--yes", "--pinentry-mode", "loopback", *args],
            env=self._gpg_env(),
        )

    def publish(self, debs: Mapping[str, Sequence[Path]]) -> None:
        """Make ``debs`` (suite -> its .debs, and nothing else) what the repository offers,
        every suite freshly signed."""
        pool = self.root / "pool"
        shutil.rmtree(pool, ignore_errors=True)
        shutil.rmtree(self.root / "dists", ignore_errors=True)
        arch = run_checked(["dpkg", "--print-architecture"]).stdout.strip()
        for suite, files in debs.items():
            shelf = pool / "main" / suite
            shelf.mkdir(parents=True)
            for deb in files:
                shutil.copy2(deb, shelf / deb.name)
            self._index(suite, arch)
        self.suites = tuple(debs)

    def _index(self, suite: str, arch: str) -> None:
        dist = self.root / "dists" / suite
        binary = dist / "main" / f"binary-{arch}"
        binary.mkdir(parents=True)
        packages = run_checked(
            ["apt-ftparchive", "packages", f"pool/main/{suite}"], cwd=self.root
        ).stdout
        (binary / "Packages").write_text(packages)
        run_checked(["gzip", "-9nk", str(binary / "Packages")])
        release = run_checked(
            [
                "apt-ftparchive",
                "-o=APT::FTPArchive::Release::Origin=ampd-test",
                "-o=APT::FTPArchive::Release::Label=ampd-test",
                f"-o=APT::FTPArchive::Release::Suite={suite}",
                f"-o=APT::FTPArchive::Release::Codename={suite}",
                f"-o=APT::FTPArchive::Release::Architectures={arch}",
                "-o=APT::FTPArchive::Release::Components=main",
                "release",
                str(dist),
            ]
        ).stdout
        (dist / "Release").write_text(release)
        user = ["--local-user", self.fingerprint]
        self._gpg(*user, "--clearsign", "--output", str(dist / "InRelease"), str(dist / "Release"))
        self._gpg(
            *user,
            "--armor",
            "--detach-sign",
            "--output",
            str(dist / "Release.gpg"),
            str(dist / "Release"),
        )

    def sources_entry(self, suite: str, keyring: str = KEYRING_IN_ROOT) -> str:
        return (
            f"Types: deb\nURIs: file:{REPO_IN_ROOT}\nSuites: {suite}\n"
            f"Components: main\nSigned-By: {keyring}\n"
        )

    def install_into(self, root: Path, suite: str) -> None:
        """Copy the repository, its key and a sources entry for ``suite`` into a root."""
        target = root / REPO_IN_ROOT.lstrip("/")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.root, target)
        keyring = root / KEYRING_IN_ROOT.lstrip("/")
        keyring.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.keyring, keyring)
        (root / SOURCES_IN_ROOT.lstrip("/")).write_text(self.sources_entry(suite))

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--kill", "all"],
            env=self._gpg_env(),
            capture_output=True,
            check=False,
            timeout=30,
        )
        shutil.rmtree(self.gnupghome, ignore_errors=True)
