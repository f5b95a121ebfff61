"""Shareable views: URL spelling of widget values (pure), and AppTest round trips on the tiny zoo (deep links set the
widgets, an unchanged view leaves its URL unchanged, bad links warn, teacher mode hides controls, presets open)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gradreg.paper.zoo import read_manifest
from gradreg.ui import presets, urlstate

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"plain": "id-plain", "grad_y_10": "id-gr10", "id-plain": "id-plain", "id-gr10": "id-gr10"}


# Pure: decode / encode / validate
@pytest.mark.parametrize("key, raw, value", [
    ("attack.eps.fgsm.linf", "0.15", 0.15),
    ("attack.eps.pgd.l2", "2.5", 2.5),  # an L2 radius may exceed the L∞ slider's 0.5
    ("attack.pgd.steps", "40", 40),
    ("attack.pgd.random_start", "0", False),
    ("attack.pgd.norm", "l2", "l2"),
    ("attack.target", "7", 7),
    ("attack.target", "least_likely", "least_likely"),
    ("lambda.lam.grad_y", "10", 10.0),
    ("lambda.classes", ["3", "7"], [3, 7]),
    ("saliency.methods", "input_gradient,smoothgrad", ["input_gradient", "smoothgrad"]),
    ("saliency.shared", "true", True),
    ("attack.models", ["plain", "id-gr10"], ["id-plain", "id-gr10"]),
    ("attack.models", "", []),
    ("transfer.source", "grad_y_10", "id-gr10"),
    ("quiz.seed", "1234", 1234),
    ("story.step", "3", 3),
])
def test_decode_reads_every_kind_and_encode_inverts_it(key, raw, value):
    assert urlstate.decode(key, raw, models=MODELS) == value
    names = {i: n for n, i in MODELS.items() if n != i}
    again = urlstate.encode(key, value, names=names)
    assert urlstate.decode(key, again, models=MODELS) == value
    if key.endswith((".models", ".source")) and value:
        assert set(again) <= {"plain", "grad_y_10"}, "models travel by their zoo name"


@pytest.mark.parametrize("key, raw, message", [
    ("attack.eps.fgsm.linf", "0.9", "outside [0, 0.5]"),
    ("attack.eps.fgsm.linf", "lots", "not a number"),
    ("attack.method", "deepfool", "not one of fgsm"),
    ("attack.models", ["plain", "nope"], "not one of grad_y_10, plain"),
    ("attack.pgd.steps", "100000", "outside [1, 200]"),
    ("attack.pgd.bogus", "1", "not a setting"),
    ("attack.eps.fgsm.l7", "0.1", "not a setting"),
    ("lambda.classes", "3,12", "not one of 0"),
    ("saliency.shared", "maybe", "not 1 or 0"),
    ("attack.index", "-4", "outside [0, ∞]"),
    ("curves.n", [], "no value"),
    ("morphs.steps", "30", "outside [1, 20]"),  # the page's slider would raise
    ("masking.n", "100000", "outside [16, 256]"),  # teacher mode uses it without a widget: the budget must hold
    ("morphs.judge", "nobody", "not one of grad_y_10, plain"),
])
def test_decode_refuses_bad_values_with_a_reason(key, raw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        urlstate.decode(key, raw, models=MODELS)


def test_read_keeps_the_good_values_and_names_the_bad_ones():
    values, errors = urlstate.read({"attack.method": "pgd", "attack.eps.pgd.linf": "2", "junk": "x"})
    assert values == {"attack.method": "pgd"}
    assert len(errors) == 2 and "attack.eps.pgd.linf=2" in errors[0] and "junk" in errors[1]


def test_view_params_keep_the_links_spelling_and_only_changed_defaults():
    base: dict = {}
    first = urlstate.view_params({"lambda.eps": 0.1, "lambda.shared": True}, link={}, applied={}, base=base)
    assert first == {} and base == {"lambda.eps": ["0.1"], "lambda.shared": ["1"]}, "defaults recorded, not written"
    moved = urlstate.view_params({"lambda.eps": 0.2, "lambda.shared": True}, link={}, applied={}, base=base)
    assert moved == {"lambda.eps": ["0.2"]}
    link = {"attack.models": ["plain,grad_y_10"], "attack.eps.fgsm.linf": ["0.20"]}
    applied = {"attack.models": ["id-plain", "id-gr10"], "attack.eps.fgsm.linf": 0.2}
    names = {"id-plain": "plain", "id-gr10": "grad_y_10"}
    same = urlstate.view_params(dict(applied), link=link, applied=applied, base={}, names=names)
    assert same == link, "an unchanged view keeps the link's own spelling"
    changed = urlstate.view_params({**applied, "attack.models": ["id-plain"]}, link=link, applied=applied, base={},
                                   names=names)
    assert changed == {"attack.models": ["plain"], "attack.eps.fgsm.linf": ["0.20"]}


def test_ownership_and_teacher_flag():
    assert urlstate.owned("attack.eps.fgsm.linf", ("attack.",)) and urlstate.owned("curves.n", ("curves.n",))
    assert not urlstate.owned("attackers.x", ("attack.",)) and not urlstate.owned("lambda.eps", ())
    assert not urlstate.owned(3, ("attack.",)), "session state may hold keys that are not strings"
    assert urlstate.teacher({"teacher": ["1"]}) and urlstate.teacher({"lock": [""]})
    assert not urlstate.teacher({}) and not urlstate.teacher({"teacher": ["0"]}) and not urlstate.teacher(
        {"teacher": ["banana"]})


def test_presets_decode_on_the_shipped_zoo_and_point_at_registered_pages():
    manifest = read_manifest(ROOT / "checkpoints")
    models = {e["name"]: e["id"] for e in manifest["models"]}
    routed = re.findall(r'st\.Page\("pages/(\w+)\.py"', (ROOT / "app.py").read_text())
    assert 4 <= len(presets.PRESETS) <= 6
    for preset in presets.PRESETS:
        values, errors = urlstate.read(preset.params, models=models)
        assert not errors and set(values) == set(preset.params), preset.title
        assert preset.page in routed, preset.title
        assert presets.preset(preset.title) is preset
    with pytest.raises(ValueError, match="valid: Noisy"):
        presets.preset("Nope")


@pytest.mark.parametrize("title, fooled", [
    ("FGSM breaks the plain model", {"plain": True, "grad_y_110": False}),
])
def test_attack_presets_digits_do_what_their_lessons_say(title, fooled):
    """The digit a preset opens is one its attack turns on the shipped plain model and not on the defences."""
    from gradreg.core.data import load_dataset
    from gradreg.lessons import panels
    from gradreg.training.checkpoints import load

    params, root = presets.preset(title).params, ROOT / "checkpoints"
    files = {e["name"]: e["file"] for e in read_manifest(root)["models"]}
    x, y = load_dataset("mnist", "test").tensors
    i = panels.gallery(y)[int(params["attack.class"])][int(params.get("attack.example", "0"))]
    method = params["attack.method"]
    for name, expected in fooled.items():
        panel = panels.attack_panel(load(root / files[name]).build(), x[i:i + 1], y[i:i + 1], method=method,
                                    size=float(params[f"attack.eps.{method}.linf"]))
        assert (panel["pred_adv"] != panel["label"]) is expected, (title, name)


# AppTest on the tiny zoo (plain, grad_y_0.1/1/10, fgsm_at)
@pytest.fixture
def app(monkeypatch, tiny_zoo, tmp_path):
    """AppTest of ``app.py`` on the tiny zoo. AppTest turns Streamlit's legacy pages/ mode back on before every run,
    so a rerun would execute the page file alone, without app.py (whose frame writes the URL); a real server turns
    it off for good at its first ``st.navigation``, and so does this fixture."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def server_like(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", server_like)
    monkeypatch.setenv("GRADREG_ZOO_DIR", str(tiny_zoo))
    monkeypatch.setenv("GRADREG_CHECKPOINT_DIR", str(tmp_path / "user"))
    monkeypatch.chdir(ROOT)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def _link(app: AppTest, page: str, params: dict) -> AppTest:
    """Open ``page`` the way a pasted link does: its query parameters arrive with the request."""
    app.run()
    app.switch_page(page)
    app.query_params.clear()
    app.query_params.update(params)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _ids(tiny_zoo) -> dict[str, str]:
    return {e["name"]: e["id"] for e in read_manifest(tiny_zoo)["models"]}


def test_lambda_link_round_trip(app):
    params = {"lambda.regularizer": "grad_y", "lambda.lam.grad_y": "10", "lambda.eps": "0.2",
              "lambda.classes": ["3", "7"], "lambda.shared": "0"}
    _link(app, "pages/lambda_explorer.py", params)
    assert app.select_slider(key="lambda.lam.grad_y").value == 10.0
    assert app.select_slider(key="lambda.eps").value == 0.2
    assert app.session_state["lambda.classes"] == [3, 7] and app.toggle(key="lambda.shared").value is False
    assert not app.warning
    assert app.query_params == params, "an unchanged view leaves its URL unchanged"
    app.run()
    assert app.query_params == params


def test_attack_link_round_trip_with_model_names(app, tiny_zoo):
    ids = _ids(tiny_zoo)
    params = {"attack.models": ["plain", "grad_y_1"], "attack.method": "pgd", "attack.eps.pgd.linf": "0.2",
              "attack.class": "7", "attack.pgd.steps": "5", "curves.n": "32"}
    _link(app, "pages/attack_lab.py", params)
    assert app.multiselect(key="attack.models").value == [ids["plain"], ids["grad_y_1"]]
    assert app.selectbox(key="attack.method").value == "pgd"
    assert app.slider(key="attack.eps.pgd.linf").value == 0.2
    assert app.number_input(key="attack.pgd.steps").value == 5 and app.number_input(key="curves.n").value == 32
    assert all("‖δ‖∞ = 0.200" in m.value for m in app.markdown if "predicted" in m.value)
    assert app.query_params == params


def test_untouched_page_has_a_clean_url_and_a_change_writes_only_itself(app):
    _link(app, "pages/saliency_compare.py", {})
    assert app.query_params == {}
    app.toggle(key="saliency.shared").set_value(False).run()
    assert app.query_params == {"saliency.shared": "0"}
    app.toggle(key="saliency.shared").set_value(True).run()
    assert app.query_params == {}, "back at the default: the parameter goes"


def test_a_change_inside_a_fragment_reaches_the_url(app):
    _link(app, "pages/lambda_explorer.py", {})
    app.select_slider(key="lambda.eps").set_value(0.3).run()
    assert app.query_params == {"lambda.eps": "0.3"}


def test_bad_link_warns_once_and_falls_back(app, tiny_zoo):
    params = {"attack.models": ["plain", "distill"], "attack.eps.fgsm.linf": "9", "attack.method": "fgsm",
              "attack.bogus": "1", "curves.top": "0.35", "lambda.eps": "0.1"}
    _link(app, "pages/attack_lab.py", params)
    (warning,) = app.warning
    for part in ("distill", "attack.eps.fgsm.linf=9", "attack.bogus", "curves.top=0.35"):
        assert part in warning.value
    assert len(app.multiselect(key="attack.models").value) == 3, "the default line-up"
    assert app.slider(key="attack.eps.fgsm.linf").value == 0.05, "the page's default: the tiny zoo's lesson ε"
    assert app.query_params == {"attack.method": "fgsm"}, "bad values and other pages' keys leave the URL"
    app.run()
    assert not app.warning, "the warning is about the link, once"


def test_switching_pages_drops_the_previous_pages_parameters(app):
    _link(app, "pages/lambda_explorer.py", {"lambda.eps": "0.3"})
    app.switch_page("pages/saliency_compare.py").run()
    assert not app.exception and app.query_params == {}


def test_teacher_mode_hides_advanced_controls_but_follows_the_link(app):
    params = {"teacher": "1", "attack.method": "pgd", "attack.eps.pgd.linf": "0.2", "attack.pgd.steps": "3",
              "attack.models": ["plain", "grad_y_10"]}
    _link(app, "pages/attack_lab.py", params)
    assert not [e for e in app.expander if "settings" in e.label], "the attack's knobs are hidden"
    assert not {"attack.pgd.steps", "curves.n"} & {n.key for n in app.number_input}, "and the curves' budget"
    assert app.slider(key="attack.eps.pgd.linf").value == 0.2
    assert any("controls locked" in i.value for i in app.sidebar.info)
    assert app.query_params == params
    _link(app, "pages/saliency_compare.py", {"saliency.methods": ["input_gradient"], "teacher": "1"})
    assert not [m for m in app.multiselect if m.key == "saliency.methods"]
    assert len(app.get("plotly_chart")[0].proto.spec) and "Input gradient" in app.caption[0].value
    assert app.query_params == {"saliency.methods": "input_gradient", "teacher": "1"}
    app.switch_page("pages/home.py").run()
    assert app.query_params == {"teacher": "1"}, "the lock outlives page changes"
    assert not [link for link in app.get("page_link") if "train" in link.proto.page]


def test_the_sidebar_lock_button_turns_teacher_mode_on(app):
    _link(app, "pages/lambda_explorer.py", {"lambda.eps": "0.2"})
    app.sidebar.button(key="url.lock").click().run()
    assert app.query_params == {"lambda.eps": "0.2", "teacher": "1"}
    assert any("controls locked" in i.value for i in app.sidebar.info)


def test_home_lists_every_preset_as_a_link(app):
    app.run()
    links = {link.proto.label: link.proto for link in app.get("page_link")}
    for preset in presets.PRESETS:
        assert preset.title in links and preset.page in links[preset.title].page


@pytest.mark.parametrize("preset", presets.PRESETS, ids=lambda p: p.title)
def test_each_preset_opens_its_page_with_its_state(app, tiny_zoo, preset):
    _link(app, f"pages/{preset.page}.py", preset.params)
    values, _ = urlstate.read(preset.params, models=_ids(tiny_zoo))
    missing = [n for n in preset.params.get(next((k for k in preset.params if k.endswith(".models")), ""), [])
               if n not in _ids(tiny_zoo)]
    if missing:  # the tiny zoo has no distilled model: the link says so, the page still opens
        assert any(m in app.warning[0].value for m in missing)
    for key, value in values.items():
        assert app.session_state[key] == value, key
    assert not app.error, [e.value for e in app.error]


def test_a_link_to_a_page_that_stops_early_warns_and_is_not_applied_twice(app, tiny_zoo):
    params = {"attack.models": "plain", "attack.method": "nope"}
    _link(app, "pages/attack_lab.py", params)
    assert any("two models" in i.value for i in app.info), "the page stopped before the attack widgets"
    assert "attack.method: 'nope'" in app.warning[0].value
    assert app.query_params == params, "after st.stop() nothing more reaches the browser, the URL included"
    ids = _ids(tiny_zoo)
    app.multiselect(key="attack.models").set_value([ids["plain"], ids["grad_y_1"]]).run()
    assert app.multiselect(key="attack.models").value == [ids["plain"], ids["grad_y_1"]], "the old link stays unapplied"
    assert app.query_params == {"attack.models": ["plain", "grad_y_1"]}


def test_a_teacher_link_to_the_train_page_opens_home_without_an_error(app):
    _link(app, "pages/train.py", {"teacher": "1"})
    assert app.title[0].value.startswith("gradreg") and not app.get("form"), "Home, not the training form"
    assert not app.error, [e.value for e in app.error]


@pytest.mark.parametrize("page, params", [
    ("draw", {"draw.eps": "0.2", "draw.models": ["plain", "grad_y_10"]}),
    ("quiz", {"quiz.eps": "0.3", "quiz.seed": "7"}),
    ("story", {"story.step": "2", "story.eps": "0.2"}),
    ("transfer", {"transfer.eps": "0.3", "transfer.method": "fgsm"}),
    ("masking", {"masking.eps": "0.1"}),
    ("morphs", {"morphs.steps": "5", "morphs.eps": "0.05"}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_lesson_page_link_round_trip(app, tiny_zoo, page, params):
    _link(app, f"pages/{page}.py", params)
    values, errors = urlstate.read(params, models=_ids(tiny_zoo))
    assert not errors and not app.warning, [w.value for w in app.warning]
    for key, value in values.items():
        assert app.session_state[key] == value, key
    assert app.query_params == params
