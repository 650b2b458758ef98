"""The yolo-attn command: kit commands, one option parser with one-line errors, Ultralytics syntax passthrough."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import yaml

from yolo_attn import BLOCKS, list_configs
from yolo_attn.cli import COMMANDS, KIT_OPTIONS, CLIError, Option, integer, items, main, number, parse_options, text


def test_list(capsys):
    """`yolo-attn list` shows every registered block with its class and every shipped config."""
    main(["list"])
    out = capsys.readouterr().out
    for name, cls in BLOCKS.items():
        assert f"{cls.__module__}.{cls.__qualname__}" in out and f"  {name} " in out
    names = {p.name for p in list_configs()}
    blocks = [b.lower() for b in BLOCKS]
    bases = ["yolov8", "yolov8-seg", "yolov8-pose", "yolov8-obb", "yolov8-cls", "yolo11"]
    assert names == {f"{base}-{b}.yaml" for base in bases for b in blocks}  # exactly the shipped set
    assert all(name in out for name in names)
    assert "data=digits.yaml" in out


def test_data(tmp_path, capsys):
    """`yolo-attn data root=... n_train=...` writes the dataset and prints its data YAML."""
    main(["data", f"root={tmp_path / 'd'}", "n_train=3", "n_val=2", "imgsz=64"])
    path = capsys.readouterr().out.strip()
    data = yaml.safe_load(open(path))
    assert len(data["names"]) == 10 and len(list((tmp_path / "d" / "images" / "train").glob("*.jpg"))) == 3
    with pytest.raises(SystemExit, match=r"^yolo-attn data: n_train must be an integer >= 1, got 'many'$"):
        main(["data", "n_train=many"])
    with pytest.raises(SystemExit, match="yolo-attn data: expected key=value, got 'n_train'"):
        main(["data", "n_train"])


FIRST = BLOCKS.names()[0]  # any registered block

SPEC = (
    Option("model", text(), required=True),
    Option("n", integer(1, 10), 3),
    Option("ratio", number(0, 1, low_open=True, high_open=True), 0.5),
    Option("models", items(), ()),
    Option("sizes", items(integer(32)), ()),
)


def test_parse_options_converts_and_fills_defaults():
    """Values are converted, defaults filled; lists in both syntaxes, also when the shell split them at spaces."""
    kw = parse_options("cmd", SPEC, ["model=a.pt", "n=4", "models=[a.yaml,'b.yaml']", "sizes=64,96"])
    assert kw == {"model": "a.pt", "n": 4, "ratio": 0.5, "models": ["a.yaml", "b.yaml"], "sizes": [64, 96]}
    split = parse_options("cmd", SPEC, ["models=[a.yaml,", "b.yaml]", "model=m.pt"], defaults=False)
    assert split == {"models": ["a.yaml", "b.yaml"], "model": "m.pt"}
    assert parse_options("cmd", SPEC, ["model=x", "models=a.yaml"], defaults=False)["models"] == ["a.yaml"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["model=a", "n=0"], r"^n must be an integer in \[1, 10\], got '0'$"),
        (["model=a", "n=two"], r"^n must be an integer in \[1, 10\], got 'two'$"),
        (["model=a", "ratio=1"], r"^ratio must be a number in \(0, 1\), got '1'$"),
        (["model=a", "ratio=nan"], r"^ratio must be a number in \(0, 1\), got 'nan'$"),
        (["model=a", "sizes=64,16"], r"^sizes must be a list written a,b or \[a,b\], each an integer >= 32, got"),
        (["model=a", "models=[a,,b]"], r"^models must be a list .*: an item is empty$"),
        (["model=a", "ration=0.2"], r"^unknown option 'ration'\. Did you mean 'ratio'\? cmd options: model, n, ratio"),
        (["model=a", "model=b"], r"^model is given twice \(model='a' and model='b'\); give it once$"),
        (["n=2"], r"^missing model \(model=\.\.\. required\); see yolo-attn cmd help$"),
        (["model"], r"^expected key=value, got 'model'"),
        (["model=a", "models=[a,", "n=2"], r"^models must be a list"),  # an unclosed list ends at the next key
    ],
)
def test_parse_options_errors(argv, message):
    """Each bad input is one CLIError naming the option, what it must be and what was given."""
    with pytest.raises(CLIError, match=message):
        parse_options("cmd", SPEC, argv)


@dataclass(frozen=True)
class _Record:
    """An option record defined elsewhere (as the bench defines its own), with a check and a non-CLI entry."""

    name: str
    type: Callable[[str], Any]
    default: Any
    check: Callable[[Any], Any]
    what: str = ""
    cli: bool = True


def _even(v: int) -> int:
    if v % 2:
        raise ValueError(f"cmd: size must be even, got {v}")
    return v


def test_parse_options_takes_other_records():
    """Records with name/type/check/cli plug in as they are: checks run after conversion, non-CLI keys are refused."""
    spec = (_Record("size", int, 2, _even, "an integer"), _Record("command", str, None, str, cli=False))
    assert parse_options("cmd", spec, ["size=4"]) == {"size": 4}
    with pytest.raises(CLIError, match=r"^size must be even, got 3$"):  # the check's own message, prefix dropped
        parse_options("cmd", spec, ["size=3"])
    with pytest.raises(CLIError, match=r"^size must be an integer, got 'x'$"):
        parse_options("cmd", spec, ["size=x"])
    with pytest.raises(CLIError, match="unknown option 'command'"):
        parse_options("cmd", spec, ["command=x"])


def test_bench_takes_ultralytics_list_syntax():
    """`models=[a.yaml,b.yaml]` (Ultralytics' list syntax) reaches the bench as a list of the two names."""
    from yolo_attn.bench import OPTIONS

    for argv in (["models=[yolov8n.yaml,yolov8n-se.yaml]"], ["models=yolov8n.yaml,yolov8n-se.yaml"],
                 ["models=[yolov8n.yaml,", "yolov8n-se.yaml]"]):
        kw = parse_options("bench", OPTIONS, argv, defaults=False)
        assert list(kw["models"]) == ["yolov8n.yaml", "yolov8n-se.yaml"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["list", "verbose=1"], r"list: unknown option 'verbose'\. list takes no options"),
        (["data", "n_train=-5"], r"data: n_train must be an integer >= 1, got '-5'"),
        (["data", "n_trian=5"], r"data: unknown option 'n_trian'\. Did you mean 'n_train'\?"),
        (["data", "texture=rch"], r"data: texture must be one of plain, rich, got 'rch': Did you mean 'rich'\?"),
        (["data", "scale=0.5,0.2"], r"data: argument 'scale' must be two fractions"),  # the generator's own check
        (["saliency", "model=/etc/passwd"], r"saliency: model must be a \.pt file, got '/etc/passwd'$"),
        (["saliency", "model=best.pt", "threshold=-1"], r"saliency: model must be a \.pt file.*does not exist"),
        (["saliency"], r"saliency: missing model \(model=\.\.\. required\); usage: yolo-attn saliency model="),
        (["visualize", "model=m.onnx", "source=x", "out=y"], r"visualize: model must be a \.pt, \.yaml or \.yml file"),
        (["visualize", "model=yolov8n-nam.yaml", "source=/no/such.jpg", "out=o"],
         r"visualize: source must be an existing file or directory, got '/no/such\.jpg': it does not exist"),
        (["visualize", "model=yolov8n-nam.yaml", "source=.", "out=o", "alpha=2"],
         r"visualize: alpha must be a number in \[0, 1\], got '2'"),
        (["make-config", "base=yolov8.yaml", f"block={FIRST}", "args=[0", "out=x.yaml"],
         r"make-config: args must be a list of the block's arguments.*got '\[0': cannot parse"),
        (["make-config", "base=yolov8.yaml", "block=NAMM", "out=x.yaml"], r"make-config: Unknown attention block"),
        (["bench", "seeds=0,0"], r"bench: seeds must be distinct, got \[0, 0\]"),
        (["bench", "models=[yolov8n.yaml,yolov8n-se.txt]"], r"bench: model 'yolov8n-se\.txt' is not a model YAML"),
        (["prune", "model=yolov8n.yaml", "ratio=1.5", "out=p.pt"], r"prune: ratio must be a number in \(0, 1\)"),
        (["prune", "model=yolov8n.yaml", "ratio=0.3", "out=p.pt", "round=0"], r"prune: round must be an integer >= 1"),
    ],
)
def test_kit_commands_reject_bad_input(argv, message, tmp_path, monkeypatch):
    """Every kit command answers bad input with `yolo-attn <command>: <problem>` before doing any work."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=f"^yolo-attn {message}"):
        main(argv)
    assert not list(tmp_path.iterdir())


BAD_INPUT = {  # one bad call per kit command, run as a user would (the first three as reported)
    "saliency": ["model=/etc/passwd"],
    "data": ["n_train=-5"],
    "bench": ["models=[yolov8n.yaml,yolov8n-se.yaml]", "seeds=0,0"],  # the list parses; the seeds are refused
    "list": ["all=true"],
    "make-config": ["base=yolov8.yaml", f"block={FIRST}", f"args={[1] * (len(BLOCKS.get(FIRST).args) + 1)}".replace(" ", ""),
                    "out=x.yaml"],  # one argument too many
    "visualize": ["model=corrupt.pt", "source=corrupt.pt", "out=maps"],  # a file that is not a checkpoint
    "prune": ["model=yolov8n.yaml", "ratio=0.3"],
}


def test_bad_input_is_one_line_without_traceback(tmp_path, env_subprocess):
    """In a real process every kit command exits non-zero with exactly one line on stderr naming the option."""
    assert set(BAD_INPUT) == set(COMMANDS)  # a new command gets a case here
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    procs = {
        cmd: subprocess.Popen([sys.executable, "-m", "yolo_attn", cmd, *args], cwd=tmp_path, env=env_subprocess,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd, args in BAD_INPUT.items()
    }  # concurrently: each pays the torch/Ultralytics import once
    expected = {"saliency": "model", "data": "n_train", "bench": "seeds", "list": "'all'", "make-config": "too many",
                "visualize": "model", "prune": "missing out"}
    for cmd, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert proc.returncode != 0 and "Traceback" not in err and len(lines) == 1, (cmd, err)
        assert lines[0].startswith(f"yolo-attn {cmd}: ") and expected[cmd] in lines[0], (cmd, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pt"]  # nothing written


@pytest.fixture
def image(tiny_data):
    return next((tiny_data.parent / "images" / "val").glob("*.jpg"))


def test_kit_options_stripped_before_ultralytics(tmp_path, image, monkeypatch):
    """A kit-only key=value is applied and removed; Ultralytics' own check still rejects unknown keys."""
    seen = []
    monkeypatch.setitem(KIT_OPTIONS, "kit_test_option", seen.append)
    args = ["predict", "model=yolov8n-simam.yaml", f"source={image}", "imgsz=64", f"project={tmp_path}", "name=p",
            "save=False", "verbose=False"]
    main([*args, "kit_test_option=7"])  # would raise Ultralytics' SyntaxError if it leaked through
    assert seen == ["7"]
    monkeypatch.delitem(KIT_OPTIONS, "kit_test_option")
    with pytest.raises(SyntaxError, match="kit_test_option"):
        main([*args, "kit_test_option=7"])
    with pytest.raises(SystemExit, match=r"^yolo-attn: nam_penalty must be"):
        main([*args, "nam_penalty=-1"])
