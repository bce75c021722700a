"""BT Lab: entry point. ``streamlit run app/main.py``.

Streamlit only auto-discovers ``pages/`` beside the entry script, so the top-level ``pages/*.py``
are registered here explicitly with ``st.navigation``.
"""

import os
import sys
from pathlib import Path

# `streamlit run app/main.py` puts app/ first on the import path, so `app` and `btcore` would come from
# wherever the package is installed (an editable install of another checkout): this checkout first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st  # noqa: E402
import torch  # noqa: E402

import btcore  # noqa: E402
from app.config import PRESETS, UCF11_LSTM_PRESET, config_query, get_config  # noqa: E402
from app.frame import lesson_banner, write_url  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAGES_DIR = ROOT / "pages"

st.set_page_config(page_title="BT Lab", page_icon="🧊", layout="wide")
# Set once for the whole process: workers of several sessions share torch's thread pool, and on small
# shared machines few threads per op are faster than torch's default (docs/reference.md, "Threads and the app").
torch.set_num_threads(max(1, min(4, (os.cpu_count() or 2) // 2)))

# (file in pages/, title, url path, icon, the question the page answers), in the order to follow.
PAGES = [
    ("shapes.py", "Shapes & parameters", "shapes", ":material/straighten:",
     "How many parameters and multiply-adds do BT, TT and dense need for my layer?"),
    ("learn.py", "Learn: BT, TT and TR", "learn", ":material/school:",
     "What are these formats, and how is y = x W computed without forming W?"),
    ("approximation.py", "Approximation", "approximation", ":material/compare:",
     "How well does each format fit a given matrix at the same parameter budget?"),
    ("training.py", "Training", "training", ":material/model_training:",
     "How do dense, TT and BT recurrent classifiers train against each other?"),
    ("study.py", "Format study", "study", ":material/science:",
     "Which format and ranks give the best accuracy for the parameters and speed, on my data?"),
]


def home() -> None:
    ucf11 = PRESETS[UCF11_LSTM_PRESET].bt_spec()
    lesson_banner("home_")
    write_url(config_query(get_config()))  # the lesson flag and the configuration stay in the link
    st.title("BT Lab")
    st.markdown(
        "BT Lab lets you explore **Block-Term (BT) tensor decomposition for compact layers and RNNs** "
        "(Ye et al., *Learning Compact Recurrent Neural Networks with Block-Term Tensor Decomposition*, "
        "CVPR 2018). A weight matrix W of shape I x J is tensorized (I = I₁···I_d, J = J₁···J_d) and "
        "written as a sum of N Tucker blocks; the Tensor-Train (TT) matrix is the baseline and the dense "
        "matrix the reference. On the paper's UCF11 input layer, BT (R = 4, N = 2) uses about "
        f"**{int(ucf11.compression):,}x** fewer parameters than the dense LSTM."
    )
    st.image(str(ROOT / "assets" / "bt_diagram.svg"), caption="W in BT format: a sum of N Tucker blocks, "
             "each a core joined to d factors", width=700)
    st.subheader("Start here")
    st.caption("The pages build on each other; follow them in this order. They share one configuration (modes, "
               "ranks, blocks), chosen on the first page, and every page's state is in its link.")
    for step, (file, title, url, icon, question) in enumerate(PAGES, start=1):
        c1, c2 = st.columns([1, 3], vertical_alignment="center")
        with c1:
            st.page_link(pages[url], label=f"{step}. {title}", icon=icon)
        c2.markdown(question)
    st.caption("Everything runs locally: data is generated or shipped with the app; nothing is downloaded. "
               "Add `?lesson=1` to a page's link to hide its advanced controls (for projecting in class).")


home_page = st.Page(home, title="Home", icon=":material/home:", default=True, url_path="home")
pages = {url: st.Page(str(PAGES_DIR / file), title=title, url_path=url, icon=icon)
         for file, title, url, icon, _ in PAGES}
st.navigation([home_page, *pages.values()]).run()
