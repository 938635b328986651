"""CPU feature detection behind the benchmark's int8 note."""

from __future__ import annotations

from pathlib import Path

from resnet.utils.cpu import cpu_flags, has_int8_dot_product, has_native_bf16, int8_without_vnni_note

ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n\nprocessor\t: 1\nflags\t\t: fpu\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx avx2 avx512f avx512bw avx512_vnni avx512_bf16\n"


def test_flags_come_from_the_first_cpu(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(ZEN3)
    flags = cpu_flags(info)
    assert flags is not None and "avx2" in flags and "fma" in flags
    assert cpu_flags(tmp_path / "missing") is None
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    assert cpu_flags(tmp_path / "arm") is None


def test_int8_note_only_on_x86_without_vnni(tmp_path: Path) -> None:
    avx2 = frozenset(ZEN3.split("flags\t\t: ")[1].split("\n")[0].split())
    zen4 = frozenset(ZEN4.split("flags\t\t: ")[1].split())
    assert has_int8_dot_product(avx2) is False and has_int8_dot_product(zen4) is True
    assert has_int8_dot_product(frozenset({"avx2", "avx_vnni"})) is True  # Alder Lake's VEX form counts
    note = int8_without_vnni_note(avx2)
    assert note is not None and "no VNNI" in note and "inference_accuracy" in note
    assert int8_without_vnni_note(zen4) is None
    assert int8_without_vnni_note(frozenset({"neon"})) is None  # not x86: nothing to say


def test_native_bf16_needs_avx512_bf16_or_amx(tmp_path: Path) -> None:
    zen4 = frozenset(ZEN4.split("flags\t\t: ")[1].split())
    assert has_native_bf16(zen4) and has_native_bf16(frozenset({"avx512f", "amx_bf16", "amx_tile"}))
    assert not has_native_bf16(frozenset({"avx2", "fma"})) and not has_native_bf16(frozenset({"avx512f", "avx512_vnni"}))
