import os
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from colab_magic import drive
from tests.fake_colab import FakeDrive, install


@pytest.fixture(autouse=True)
def no_drive_yet(monkeypatch):
    drive.forget()
    for key in ("COLAB_GPU", "COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE", drive.ENV_LOCAL):
        monkeypatch.delenv(key, raising=False)
    yield
    drive.forget()


@pytest.fixture
def colab(monkeypatch):
    fake = FakeDrive()
    install(monkeypatch, fake)
    return fake


# --- outside Colab -----------------------------------------------------------------------------


def test_local_default_folder_is_made_with_mydrive_layout(ip, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = ip.run_line_magic("mount_drive", "")
    assert path == tmp_path / "colab_drive" / "MyDrive" and path.is_dir()
    assert ip.user_ns["DRIVE"] == path
    out = capsys.readouterr().out
    assert "Not in Colab" in out and str(path) in out and "chosen by the default" in out
    assert drive.current().mydrive == path


def test_environment_variable_then_flag_choose_the_folder(ip, monkeypatch, tmp_path):
    monkeypatch.setenv(drive.ENV_LOCAL, str(tmp_path / "from_env"))
    assert ip.run_line_magic("mount_drive", "-q") == tmp_path / "from_env" / "MyDrive"
    flag = tmp_path / "from flag ü"  # spaces and non-ASCII are fine for a local folder
    assert ip.run_line_magic("mount_drive", f"-q --local '{flag}'") == flag / "MyDrive"
    assert (flag / "MyDrive").is_dir()


def test_existing_folder_is_used_as_is_and_nothing_is_overwritten(ip, tmp_path):
    root = tmp_path / "drive"
    (root / "MyDrive").mkdir(parents=True)
    (root / "MyDrive" / "data.csv").write_text("keep me")
    (root / "other.txt").write_text("and me")
    path = ip.run_line_magic("mount_drive", f"-q --local {root} --var D2")
    assert ip.user_ns["D2"] == path
    assert (path / "data.csv").read_text() == "keep me" and (root / "other.txt").read_text() == "and me"


def test_kaggle_suggests_working_folder(ip, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    ip.run_line_magic("mount_drive", f"--local {tmp_path / 'd'}")
    assert "/kaggle/working" in capsys.readouterr().out


def missing_parent(p):
    return p / "missing" / "drive"


def a_file(p):
    (p / "file.txt").write_text("x")
    return p / "file.txt"


def mydrive_is_a_file(p):
    (p / "d").mkdir()
    (p / "d" / "MyDrive").write_text("x")
    return p / "d"


@pytest.mark.parametrize(
    "make, message",
    [
        (missing_parent, "does not exist. Create it first"),
        (a_file, "file.txt is a file, not a folder"),
        (mydrive_is_a_file, "MyDrive is a file, not a folder"),
        (lambda p: p / ("x" * 300), "Cannot create .*: File name too long.$"),  # raised by the checks themselves
    ],
)
def test_bad_local_paths_are_one_line_errors(ip, tmp_path, make, message):
    target = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("mount_drive", f"--local {target}")
    assert drive.current() is None
    assert sorted(tmp_path.rglob("*")) == before  # nothing made, nothing touched


def test_no_permission_to_create_is_a_one_line_error(ip):
    # sysfs refuses new folders even to root (CI runs as root, so chmod would not do).
    assert Path("/sys").is_dir(), "this test needs Linux's /sys"
    with pytest.raises(UsageError, match="No permission to create /sys/colab_magic_drive"):
        ip.run_line_magic("mount_drive", "--local /sys/colab_magic_drive")


def test_unwritable_existing_folder_is_refused(ip, tmp_path, monkeypatch):
    # Root can write anywhere, so the permission check itself is exercised through os.access.
    root = tmp_path / "ro"
    (root / "MyDrive").mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(drive.os, "access", lambda p, mode: False if Path(p) == root else real_access(p, mode))
    with pytest.raises(UsageError, match=f"No permission to write in {root}"):
        ip.run_line_magic("mount_drive", f"--local {root}")


def test_status_and_unmount_outside_colab(ip, tmp_path, capsys):
    ip.run_line_magic("mount_drive", "--status")
    assert "No drive mounted" in capsys.readouterr().out
    ip.run_line_magic("mount_drive", f"-q --local {tmp_path / 'd'}")
    ip.run_line_magic("mount_drive", "--status")
    out = capsys.readouterr().out
    assert "Local stand-in" in out and "free" in out and str(tmp_path / "d" / "MyDrive") in out
    ip.run_line_magic("mount_drive", "--unmount")
    assert "Nothing to unmount" in capsys.readouterr().out
    assert (tmp_path / "d" / "MyDrive").is_dir()  # its files stay
    assert drive.current() is None  # forgotten: the history goes back to its default place


def test_bad_flags(ip):
    with pytest.raises(UsageError, match="don't go together"):
        ip.run_line_magic("mount_drive", "--status --unmount")
    with pytest.raises(UsageError, match="--timeout must be a positive"):
        ip.run_line_magic("mount_drive", "--timeout 0")
    with pytest.raises(UsageError, match="--var needs a Python variable name"):
        ip.run_line_magic("mount_drive", "--var 9lives")
    with pytest.raises(UsageError, match="unrecognized arguments"):
        ip.run_line_magic("mount_drive", "--bogus")


# --- in Colab (google.colab.drive faked at the import boundary) --------------------------------


def test_colab_mount_calls_colab_with_its_options(ip, colab, tmp_path, capsys):
    mountpoint = tmp_path / "content" / "drive"
    path = ip.run_line_magic("mount_drive", f"--mountpoint {mountpoint} --readonly --timeout 30")
    assert colab.calls == [("mount", str(mountpoint), False, 30000, True)]
    assert path == mountpoint / "MyDrive" and ip.user_ns["DRIVE"] == path
    assert "mounted read-only" in capsys.readouterr().out
    assert drive.current().mode == "colab"


def test_colab_already_mounted_says_so_without_calling_colab(ip, colab, tmp_path, monkeypatch, capsys):
    mountpoint = tmp_path / "drive"
    (mountpoint / "MyDrive").mkdir(parents=True)
    monkeypatch.setattr(drive.os.path, "ismount", lambda p: Path(p) == mountpoint)
    path = ip.run_line_magic("mount_drive", f"--mountpoint {mountpoint}")
    assert colab.calls == [] and path == mountpoint / "MyDrive"
    assert "already mounted" in capsys.readouterr().out
    ip.run_line_magic("mount_drive", f"-q --mountpoint {mountpoint} --force-remount")
    assert colab.calls == [("mount", str(mountpoint), True, 120000, False)]


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no text")


TIMEOUT = "Google Drive did not mount within 5 s ({}). Try again, or with a larger --timeout."
ENTERPRISE = "Google Drive cannot be mounted in this runtime ({}): in Colab Enterprise, use Cloud Storage instead."
FILES = "{root} already holds files: Colab mounts only on an empty folder. Choose another --mountpoint."
OTHER = "Colab could not mount Google Drive at {root}: {}"


@pytest.mark.parametrize(
    "error, message",
    [
        (ValueError("mount failed"), TIMEOUT.format("mount failed")),
        (ValueError("Timed out waiting"), TIMEOUT.format("Timed out waiting")),
        (TimeoutError("timeout after 5s"), TIMEOUT.format("timeout after 5s")),
        (RuntimeError("DriveFS is not supported in Colab Enterprise"),
         ENTERPRISE.format("DriveFS is not supported in Colab Enterprise")),
        (RuntimeError("Enterprise runtime"), ENTERPRISE.format("Enterprise runtime")),
        (RuntimeError("drivefs missing"), ENTERPRISE.format("drivefs missing")),
        (RuntimeError("Not supported here"), ENTERPRISE.format("Not supported here")),
        (ValueError("Mountpoint must not be a symlink"),
         "{root} is a symbolic link: Colab mounts only on a real folder. Choose another --mountpoint."),
        (ValueError("Mountpoint must not already contain files"), FILES),
        (ValueError("folder not empty"), FILES),
        (ValueError("a non-empty folder"), FILES),
        (ValueError("something new\nwith a second line"), OTHER.format("something new", root="{root}")),
        (ValueError(""), OTHER.format("ValueError", root="{root}")),
        (Unprintable(), OTHER.format("Unprintable", root="{root}")),
    ],
)
def test_colab_errors_become_one_line(ip, monkeypatch, tmp_path, error, message):
    install(monkeypatch, FakeDrive(fail_with=error))
    root = tmp_path / "m"
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("mount_drive", f"--mountpoint {root} --timeout 5")
    assert str(err.value) == message.replace("{root}", str(root))
    assert drive.current() is None


def test_colab_space_in_mountpoint_is_refused_before_colab_is_called(ip, colab):
    with pytest.raises(UsageError, match="path with a space"):
        ip.run_line_magic("mount_drive", "--mountpoint '/content/my drive'")
    assert colab.calls == []


def test_colab_unmount_flushes(ip, colab, tmp_path, capsys):
    ip.run_line_magic("mount_drive", f"-q --mountpoint {tmp_path / 'm'}")
    ip.run_line_magic("mount_drive", "--unmount --timeout 10")
    assert colab.calls[-1] == ("flush_and_unmount", 10000)
    assert "flushed, then unmounted" in capsys.readouterr().out
    assert drive.current() is None


def test_local_flag_in_colab_uses_the_local_folder(ip, colab, tmp_path, capsys):
    path = ip.run_line_magic("mount_drive", f"--local {tmp_path / 'l'}")
    assert colab.calls == [] and path == tmp_path / "l" / "MyDrive"
    assert "In Colab, but --local was given" in capsys.readouterr().out


def test_same_notebook_code_runs_in_both(ip, colab, monkeypatch, tmp_path):
    cell = "%mount_drive -q {flags}\n(DRIVE / 'out.txt').write_text('ok')\n"
    ip.run_cell(cell.format(flags=f"--mountpoint {tmp_path / 'colab'}")).raise_error()
    monkeypatch.delitem(os.sys.modules, "google.colab")
    drive.forget()
    ip.run_cell(cell.format(flags=f"--local {tmp_path / 'local'}")).raise_error()
    assert (tmp_path / "colab" / "MyDrive" / "out.txt").read_text() == "ok"
    assert (tmp_path / "local" / "MyDrive" / "out.txt").read_text() == "ok"


# --- the module's own API, as code that is not the magic calls it ------------------------------------



def _runtime(kind):
    from colab_magic.environment import Runtime

    return Runtime(kind, kind)


def test_mount_with_its_defaults_in_colab(colab, tmp_path):
    mounted = drive.mount(_runtime("colab"), str(tmp_path / "d"))
    assert colab.calls == [("mount", str(tmp_path / "d"), False, 120000, False)]  # not read-only, 2 minutes
    assert mounted == drive.DriveMount("colab", tmp_path / "d", tmp_path / "d" / "MyDrive", False)
    assert drive.current() == mounted
    assert drive.unmount(_runtime("colab")) == mounted and drive.current() is None
    assert colab.calls[-1] == ("flush_and_unmount", 120000)


def test_mount_read_only_and_already_mounted(colab, tmp_path, monkeypatch):
    root = tmp_path / "d"
    (root / "MyDrive").mkdir(parents=True)
    monkeypatch.setattr(drive.os.path, "ismount", lambda p: Path(p) == root)
    mounted = drive.mount(_runtime("colab"), str(root), readonly=True)
    assert mounted == drive.DriveMount("colab", root, root / "MyDrive", True, already=True) and colab.calls == []


def test_unmount_failure_and_a_colab_without_its_module(colab, tmp_path, monkeypatch):
    drive.mount(_runtime("colab"), str(tmp_path / "d"))
    colab.fail_with = RuntimeError("busy\nmore")
    with pytest.raises(drive.DriveError) as err:
        drive.unmount(_runtime("colab"))
    assert str(err.value) == "Could not unmount Google Drive: busy" and drive.current() is not None
    monkeypatch.setitem(os.sys.modules, "google.colab", None)
    drive.forget()
    with pytest.raises(drive.DriveError) as err:
        drive.mount(_runtime("colab"), str(tmp_path / "e"))
    assert str(err.value) == "This looks like Colab, but google.colab cannot be imported; restart the runtime."


def test_local_stand_in_from_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mounted = drive.mount(_runtime("jupyter"), local="rel", environ={})
    assert mounted == drive.DriveMount("local", tmp_path / "rel", tmp_path / "rel" / "MyDrive", chosen_by="--local",
                                       runtime_kind="jupyter")
    by_env = drive.mount(_runtime("ipython"), environ={drive.ENV_LOCAL: str(tmp_path / "env")})
    assert (by_env.root, by_env.chosen_by) == (tmp_path / "env", f"${drive.ENV_LOCAL}")
    assert drive.unmount(_runtime("ipython")) == by_env and (tmp_path / "env" / "MyDrive").is_dir()  # files stay


def test_local_folder_errors_in_exact_words(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(drive.DriveError) as err:
        drive.mount(_runtime("jupyter"), local=str(loop), environ={})
    assert str(err.value) == f"{loop} is a symbolic link that leads nowhere (or to itself). Choose another --local."
    with pytest.raises(drive.DriveError) as err:
        drive.mount(_runtime("jupyter"), local=str(tmp_path / "no" / "x"), environ={})
    assert str(err.value) == f"The folder {tmp_path / 'no'} does not exist. Create it first, or choose another --local."
    long = tmp_path / ("x" * 300)
    with pytest.raises(drive.DriveError) as err:
        drive.mount(_runtime("jupyter"), local=str(long), environ={})
    assert str(err.value) == f"Cannot create {long}: File name too long."
