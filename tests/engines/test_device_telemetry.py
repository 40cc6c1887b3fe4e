"""tegrastats lines in the formats of the Jetson Nano (L4T 32.x), AGX Orin (L4T 35) and Orin Nano (L4T 36), the
per-window summary (energy per image, throttling), and the sysfs fallback's reading of thermal zones."""

import pytest
from snp_edge.engines.telemetry import parse_tegrastats, summarize

NANO = ("RAM 1510/3956MB (lfb 5x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
        "CPU [20%@1479,5%@1479,off,4%@1479] EMC_FREQ 12%@1600 GR3D_FREQ 99%@921 APE 25 PLL@34C CPU@36.5C "
        "PMIC@100C GPU@35C AO@42.5C thermal@35.75C POM_5V_IN 4725/4725 POM_5V_GPU 2063/2063 POM_5V_CPU 485/485")
NANO_THROTTLED = NANO.replace("GR3D_FREQ 99%@921", "GR3D_FREQ 99%@614").replace("GPU@35C", "GPU@81.5C") \
    .replace("POM_5V_IN 4725/4725", "POM_5V_IN 4100/4650")
ORIN = ("02-19-2023 10:12:22 RAM 2442/30536MB (lfb 6717x4MB) SWAP 0/15268MB (cached 0MB) "
        "CPU [0%@729,1%@729,0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 45%@[305,305] VIC_FREQ 729 APE 174 "
        "CV0@-256C CPU@44.375C Tboard@32C SOC2@41.375C Tdiode@33.5C SOC0@41.5C CV1@-256C GPU@-256C tj@44.375C "
        "SOC1@40.375C CV2@-256C VDD_GPU_SOC 2383mW/2383mW VDD_CPU_CV 397mW/397mW VIN_SYS_5V0 2822mW/2822mW "
        "NC 0mW/0mW VDDQ_VDD2_1V8AO 302mW/302mW")

ORIN_NANO_R36 = ("11-26-2026 10:00:00 RAM 2281/7620MB (lfb 1x4MB) SWAP 0/3810MB (cached 0MB) "
                 "CPU [1%@729,0%@729,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 87%@[612] NVENC off "
                 "NVDEC off NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@47.5C soc2@46.375C soc0@46.656C "
                 "gpu@47.281C tj@47.5C soc1@46.343C VDD_IN 7421mW/6512mW VDD_CPU_GPU_CV 2483mW/2101mW "
                 "VDD_SOC 1412mW/1412mW")


def test_nano_line():
    s = parse_tegrastats(NANO)
    assert (s["ram_mb"], s["ram_total_mb"], s["swap_mb"]) == (1510, 3956, 0)
    assert s["cpu_load_pct"] == [20, 5, 4] and s["cpu_mhz"] == [1479, 1479, 1479]  # "off" core skipped
    assert (s["emc_load_pct"], s["emc_mhz"], s["gpu_load_pct"], s["gpu_mhz"]) == (12, 1600, 99, 921)
    assert s["temps_c"]["GPU"] == 35.0 and s["temps_c"]["thermal"] == 35.75
    assert "PMIC" not in s["temps_c"]  # the Nano's fixed 100C placeholder would flag every run as hot
    assert s["rails_mw"] == {"POM_5V_IN": 4725, "POM_5V_GPU": 2063, "POM_5V_CPU": 485}


def test_orin_line():
    s = parse_tegrastats(ORIN)
    assert (s["gpu_load_pct"], s["gpu_mhz"], s["emc_mhz"]) == (45, 305, 2133)
    assert "GPU" not in s["temps_c"] and s["temps_c"]["tj"] == 44.375  # -256C: sensor off
    assert s["rails_mw"]["VIN_SYS_5V0"] == 2822 and s["rails_mw"]["VDD_GPU_SOC"] == 2383
    assert parse_tegrastats("not a tegrastats line") is None


def test_orin_nano_jetpack6_line():
    s = parse_tegrastats(ORIN_NANO_R36)
    assert (s["gpu_load_pct"], s["gpu_mhz"], s["emc_mhz"], len(s["cpu_mhz"])) == (87, 612, 2133, 6)
    assert s["temps_c"]["gpu"] == 47.281 and s["ram_total_mb"] == 7620
    assert s["rails_mw"] == {"VDD_IN": 7421, "VDD_CPU_GPU_CV": 2483, "VDD_SOC": 1412}  # "NVENC off" is no rail
    out = summarize([(0.0, s)], 0.0, 1.0, images=10)
    assert (out["input_rail"], out["gpu_rail"]) == ("VDD_IN", "VDD_CPU_GPU_CV")
    assert out["energy_mj_per_image"] == pytest.approx(7421 * 1.0 / 10)


def test_energy_per_image_and_no_throttle():
    samples = [(10.0 + i * 0.2, parse_tegrastats(NANO)) for i in range(6)]  # 10.0 .. 11.0 s
    out = summarize(samples, 10.0, 11.0, images=100)
    assert out["samples"] == 6 and out["input_rail"] == "POM_5V_IN" and out["power_mw_mean"] == 4725
    assert out["energy_mj_per_image"] == pytest.approx(4725 * 1.0 / 100)  # mW x s / images = mJ
    assert out["gpu_rail"] == "POM_5V_GPU" and not out["throttled"] and out["throttle_reasons"] == []
    assert summarize(samples, 20.0, 21.0, images=100) is None


def test_throttling_is_flagged_with_reasons():
    samples = [(0.0, parse_tegrastats(NANO)), (0.2, parse_tegrastats(NANO_THROTTLED))]
    out = summarize(samples, 0.0, 0.2, images=10)
    assert out["throttled"] and out["gpu_mhz_min"] == 614 and out["gpu_mhz_max"] == 921
    assert out["throttle_reasons"] == ["GPU clock fell to 614 MHz (peak 921 MHz)", "temperature reached 81.5 C"]
    late = summarize(samples, 0.1, 0.2, images=5, peak_gpu_mhz=921)  # the peak of the whole run counts
    assert late["throttled"] and "GPU clock fell to 614 MHz (peak 921 MHz)" in late["throttle_reasons"]


def test_orin_energy_uses_the_board_input_rail():
    out = summarize([(0.0, parse_tegrastats(ORIN))], 0.0, 2.0, images=4)
    assert out["input_rail"] == "VIN_SYS_5V0" and out["energy_mj_per_image"] == pytest.approx(2822 * 2.0 / 4)
