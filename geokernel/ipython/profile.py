"""The IPython profile, loaded as IPKernelApp loads it: the profile folder (`--profile-dir` or
`--profile`, default "default"), its `ipython_config` and `ipython_kernel_config` (.py and
.json) with command-line `--Section.trait=value` options on top, then, once the shell exists,
the start-up actions in IPKernelApp's order: matplotlib, extensions (storemagic always),
PYTHONSTARTUP and `startup/` files, `exec_lines`, `exec_files`, `code_to_run` / `file_to_run` /
`module_to_run`.

Runs when the interpreter loads (after the first kernel_info reply), never on the launcher's
fast path. Our own code reads the app-level settings from the Config; the classes of IPython
(ProfileDir, InteractiveShellApp's traits, traitlets' loaders) do the parsing."""
from __future__ import annotations

import glob
import logging
import os
import sys

from IPython.core.application import ENV_CONFIG_DIRS, SYSTEM_CONFIG_DIRS
from IPython.core.profiledir import ProfileDir, ProfileDirError
from IPython.core.shellapp import InteractiveShellApp
from IPython.paths import get_ipython_dir
from traitlets.config import Config
from traitlets.config.loader import (ConfigFileNotFound, JSONFileConfigLoader,
                                     KVArgParseConfigLoader, PyFileConfigLoader)

log = logging.getLogger("geokernel.profile")

# the config files IPKernelApp reads, in order (a later one overrides an earlier one)
CONFIG_FILES = ("ipython_config", "ipython_kernel_config")
# config sections whose app-level settings (exec_lines, extensions, ...) the kernel honours;
# IPKernelApp's own section wins over its base class's
APP_SECTIONS = ("InteractiveShellApp", "BaseIPythonApplication", "IPKernelApp")


class ProfileError(Exception):
    """The profile cannot be used (missing folder, unreadable config): one line."""


class KernelProfile:
    """The loaded profile: `config` for the shell, `settings` for the start-up actions."""

    def __init__(self, profile_dir: ProfileDir, config: Config, settings: dict):
        self.profile_dir = profile_dir
        self.config = config
        self.settings = settings  # InteractiveShellApp trait name -> value

    def get(self, name: str):
        return self.settings[name]


def find_profile_dir(profile_dir: str | None = None, profile: str | None = None) -> ProfileDir:
    if profile_dir:
        try:
            return ProfileDir.find_profile_dir(os.path.abspath(os.path.expanduser(profile_dir)))
        except ProfileDirError:
            raise ProfileError(f"profile directory {profile_dir!r} not found") from None
    name = profile or "default"
    ipython_dir = get_ipython_dir()
    try:
        return ProfileDir.find_profile_dir_by_name(ipython_dir, name)
    except ProfileDirError:
        if name != "default":  # as IPKernelApp: only the default profile is created
            raise ProfileError(f"profile {name!r} not found in {ipython_dir}") from None
    return ProfileDir.create_profile_dir_by_name(ipython_dir, name)


def _load_files(paths) -> Config:
    config = Config()
    for base in CONFIG_FILES:
        # the first folder wins (the profile before the system folders), as in traitlets
        for folder in reversed(paths):
            for loader_class, ext in ((PyFileConfigLoader, ".py"), (JSONFileConfigLoader, ".json")):
                loader = loader_class(base + ext, path=folder, log=log)
                try:
                    config.merge(loader.load_config())
                except ConfigFileNotFound:
                    continue
                except Exception as e:
                    # IPKernelApp logs a broken config file and goes on without it
                    log.error("error loading config file %s: %s", loader.full_filename, e)
    return config


def command_line_config(args) -> Config:
    """`--Section.trait=value` options (strings, parsed by each trait when it is applied)."""
    if not args:
        return Config()
    return KVArgParseConfigLoader(list(args), aliases={}, flags={}, log=log).load_config()


def _app_settings(config: Config) -> dict:
    """IPKernelApp's start-up settings, parsed and checked by IPython's InteractiveShellApp
    (the sections are merged first: IPKernelApp's values win over its base classes')."""
    merged = Config()
    for section in APP_SECTIONS:
        if section in config:
            merged.InteractiveShellApp.merge(config[section])
    app = InteractiveShellApp(config=merged)
    names = InteractiveShellApp.class_trait_names(config=True)
    return {name: getattr(app, name) for name in names}


def load_profile(options: dict | None = None) -> KernelProfile:
    """`options` as cli parses them: profile_dir, profile, matplotlib, config_args."""
    options = options or {}
    profile_dir = find_profile_dir(options.get("profile_dir"), options.get("profile"))
    config = _load_files([profile_dir.location, *ENV_CONFIG_DIRS, *SYSTEM_CONFIG_DIRS])
    config.merge(command_line_config(options.get("config_args")))
    # IPKernelApp's short options (aliases of InteractiveShellApp settings)
    for key, trait in (("matplotlib", "matplotlib"), ("code", "code_to_run"),
                       ("module", "module_to_run")):
        if options.get(key) is not None:
            config.IPKernelApp[trait] = options[key]
    if options.get("ext"):
        config.IPKernelApp.extra_extensions = list(options["ext"])
    config.ProfileDir.location = profile_dir.location
    return KernelProfile(profile_dir, config, _app_settings(config))


def put_cwd_on_path(ignore_cwd: bool = False) -> None:
    """'' on sys.path where IPython's kernel app puts it: before the first site-packages (after
    the standard library, so a file in the notebook's folder cannot shadow it)."""
    if "" in sys.path or ignore_cwd or getattr(sys.flags, "safe_path", False):
        return
    for index, path in enumerate(sys.path):
        if os.path.basename(path) in ("site-packages", "dist-packages"):
            break
    else:
        index = 0
    sys.path.insert(index, "")


def run_startup(shell, profile: KernelProfile) -> None:
    """IPKernelApp's start-up actions on the shell. Errors are shown and logged, never fatal."""
    _enable_matplotlib(shell, profile)
    _load_extensions(shell, profile)
    _run_startup_files(shell, profile)
    for line in profile.get("exec_lines"):
        try:
            shell.run_cell(line, store_history=False)
        except Exception:
            log.warning("error in exec_lines: %s", line)
            shell.showtraceback()
    for fname in profile.get("exec_files"):
        _exec_file(shell, profile, fname)
    if profile.get("hide_initial_ns"):
        shell.user_ns_hidden.update(shell.user_ns)  # %who does not list start-up names
    _run_command_line_code(shell, profile)  # after hiding: %who lists what these define
    sys.stdout.flush()
    sys.stderr.flush()


def _run_command_line_code(shell, profile) -> None:
    """code_to_run (-c), else file_to_run, then module_to_run, as InteractiveShellApp runs them."""
    if profile.get("code_to_run"):
        try:
            shell.run_cell(profile.get("code_to_run"), store_history=False)
        except Exception:
            log.warning("error in code_to_run")
            shell.showtraceback()
    elif profile.get("file_to_run"):
        fname = profile.get("file_to_run")
        if os.path.isdir(fname):
            fname = os.path.join(fname, "__main__.py")
        _exec_file(shell, profile, fname)
    if profile.get("module_to_run"):
        try:
            shell.safe_run_module(profile.get("module_to_run"), shell.user_ns)
        except Exception:
            log.warning("error running module %s", profile.get("module_to_run"))
            shell.showtraceback()


def _enable_matplotlib(shell, profile) -> None:
    key = profile.get("pylab") or profile.get("matplotlib")
    if not key:
        return
    try:
        if profile.get("pylab"):
            shell.enable_pylab(key, import_all=profile.get("pylab_import_all"))
        else:
            shell.enable_matplotlib(key)
    except Exception as e:
        log.warning("matplotlib integration %r failed: %s", key, e)


def _load_extensions(shell, profile) -> None:
    for ext in ["storemagic", *profile.get("extensions"), *profile.get("extra_extensions")]:
        try:
            shell.extension_manager.load_extension(ext)
        except Exception:
            if profile.get("reraise_ipython_extension_failures"):
                raise
            log.warning("error loading extension %s (check the config in %s)", ext,
                        profile.profile_dir.location, exc_info=True)


def _run_startup_files(shell, profile) -> None:
    startup = os.environ.get("PYTHONSTARTUP")
    if startup and profile.get("exec_PYTHONSTARTUP"):
        _exec_file(shell, profile, startup)
    dirs = [profile.profile_dir.startup_dir] + [
        os.path.join(p, "startup") for p in (*ENV_CONFIG_DIRS, *SYSTEM_CONFIG_DIRS)]
    files = []
    for folder in reversed(dirs):
        files += glob.glob(os.path.join(folder, "*.py")) + glob.glob(os.path.join(folder, "*.ipy"))
    for fname in sorted(files):  # sorted by full path, as IPython does
        _exec_file(shell, profile, fname)


def _exec_file(shell, profile, fname) -> None:
    from IPython.utils.path import filefind

    try:
        full = filefind(fname, [".", get_ipython_dir()])
    except OSError:
        log.warning("start-up file not found: %r", fname)
        return
    if not os.path.isfile(full):
        return
    saved_argv, had_file = sys.argv, "__file__" in shell.user_ns
    saved_file = shell.user_ns.get("__file__")
    sys.argv = [full]
    shell.user_ns["__file__"] = fname  # as in Python: __file__ is defined while it runs
    try:
        if full.endswith((".ipy", ".ipynb")):
            shell.safe_execfile_ipy(full)
        else:
            shell.safe_execfile(full, shell.user_ns, raise_exceptions=True)
    except Exception:
        log.warning("error in start-up file %s", full)
        shell.showtraceback()
    finally:
        sys.argv = saved_argv
        if had_file:
            shell.user_ns["__file__"] = saved_file
        else:
            shell.user_ns.pop("__file__", None)
