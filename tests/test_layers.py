"""The package's shape: dependencies point down, generic code names no backend.

Read from the source with ``ast`` (function-level imports included, type-only imports
under ``if TYPE_CHECKING:`` excluded), so a cycle hidden inside a function is caught.
"""
import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "param_search"

#: Each module's layer: a module may import only modules of lower layers.
LAYERS = [
    ["errors"],
    ["states", "files", "identity", "proc", "resources", "progress"],
    ["record", "space", "render", "retry"],
    ["lifecycle", "search_space"],
    ["index_file", "attempts"],
    ["record_map", "lockfile"],
    ["experiment"],
    ["queues.base"],
    ["queues.batch", "queues.snapshot", "queues.sge_text", "queues.torque_text"],
    ["queues.local", "queues.slurm", "queues.torque", "queues.sge"],
    ["queues.registry"],
    ["refresh", "table", "dispatch", "loop", "textview"],
    ["metrics", "plot"],
    ["trials"],
    ["api", "trial_book"],
    ["watch", "jobview"],
    ["optimize"],
    ["report_figures"],
    ["report"],
    ["cli", "_runner", "_controller", "__init__", "queues.__init__"],
]
LAYER = {module: level for level, modules in enumerate(LAYERS) for module in modules}
#: Modules that know nothing of particular schedulers.
GENERIC = ["errors", "states", "files", "identity", "proc", "record", "space", "render", "lifecycle",
           "index_file", "record_map", "lockfile", "attempts", "experiment", "queues.base", "queues.batch", "refresh", "table",
           "resources", "retry", "dispatch", "loop", "watch", "textview",
           "metrics", "plot", "api", "cli", "search_space", "optimize", "trials", "trial_book", "_controller",
           "report_figures", "report", "progress", "jobview"]
BACKEND_WORDS = ("slurm", "torque", "pbs", "sge", "grid engine", "localqueue", "localrunner",
                 "sbatch", "squeue", "qsub", "qstat")


def module_name(path: pathlib.Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts)


def runtime_imports(path: pathlib.Path) -> set[str]:
    """The package modules ``path`` imports at run time (anywhere but TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    package = module_name(path).rsplit(".", 1)[0] if "." in module_name(path) else ""
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            if node.module and node.module.startswith("param_search"):
                found.add(node.module[len("param_search."):])
            continue
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
        prefix = ".".join(p for p in base if p)
        target = ".".join(filter(None, [prefix, node.module or ""]))
        for alias in node.names:
            candidate = ".".join(filter(None, [target, alias.name]))
            found.add(candidate if (SRC / (candidate.replace(".", "/") + ".py")).exists() else target)
    return {m for m in found if m}


MODULES = sorted(module_name(p) for p in SRC.rglob("*.py"))


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m not in LAYER] == []


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_down(module):
    path = SRC / (module.replace(".", "/") + ".py")
    upward = [m for m in runtime_imports(path) if m in LAYER and LAYER[m] >= LAYER[module]
              and not module.endswith("__init__")]
    assert upward == [], f"{module} (layer {LAYER[module]}) imports {upward} from its layer or above"


@pytest.mark.parametrize("module", GENERIC)
def test_generic_modules_name_no_backend(module):
    path = SRC / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    named = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings:
                continue
            text = node.value.lower()
            named += [w for w in BACKEND_WORDS if w in text.split() or text == w]
            named += ["'local'"] if text == "local" else []   # the queue's name (the word is fine)
        elif isinstance(node, ast.Name) and node.id.lower() in BACKEND_WORDS:
            named.append(node.id)
    assert named == [], f"{module} names backends: {sorted(set(named))}"
