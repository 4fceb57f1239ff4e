"""The lesson widgets of the page: a picker for the sidebar and the step card shown beside the
particles (text, what to watch, the question, its answer on a click, Back / Next)."""
from __future__ import annotations

import panel as pn

from . import lessons
from .state import Lab

NONE = "(no lesson)"
TEXT = {"font-size": "13px"}


def picker(lab: Lab):
    """A select of the lessons; choosing one opens its first step."""
    options = {NONE: "", **{f"{i}. {les.title}": les.name for i, les in enumerate(lessons.LESSONS.values(), 1)}}
    select = pn.widgets.Select(label="guided lesson", options=options, value=lab.lesson,
                               sizing_mode="stretch_width", css_classes=["lesson-select"])
    busy = [False]

    def chosen(e):
        if busy[0]:
            return
        if e.new:
            lab.open_lesson(e.new, 1)
        elif lab.lesson:
            lab.close_lesson()

    def follow(*_):
        busy[0] = True
        try:
            select.value = lab.lesson if lab.lesson in lessons.LESSONS else ""
        finally:
            busy[0] = False

    select.param.watch(chosen, "value")
    lab.param.watch(follow, "lesson")
    return select


def card(lab: Lab):
    """The current step, or nothing while no lesson runs."""
    head = pn.pane.Markdown("", styles=TEXT, css_classes=["lesson-head"], margin=(0, 8))
    body = pn.pane.Markdown("", styles=TEXT, css_classes=["lesson-text"], margin=(0, 8))
    answer = pn.pane.Markdown("", styles=TEXT, visible=False, css_classes=["lesson-answer"], margin=(0, 8))
    show = pn.widgets.Button(label="Show the answer", color="light", css_classes=["lesson-show"])
    back = pn.widgets.Button(label="◀ Back", width=90, css_classes=["lesson-back"])
    nxt = pn.widgets.Button(label="Next ▶", width=90, color="primary", css_classes=["lesson-next"])
    end = pn.widgets.Button(label="End lesson", width=100, color="light", css_classes=["lesson-end"])
    box = pn.Column(head, body, show, answer, pn.Row(back, nxt, end), visible=False, width=330,
                    styles={"border-left": "4px solid #4a2377", "background": "#f6f2fa"},
                    css_classes=["lesson-card"], margin=(0, 12, 8, 12))

    def refresh(*_):
        if not lab.lesson or lab.lesson not in lessons.LESSONS:
            box.visible = False
            return
        les = lessons.get(lab.lesson)
        st = les.steps[lab.lesson_step - 1]
        head.object = f"**{les.title}** · step {lab.lesson_step} of {len(les.steps)}"
        body.object = f"{st.text}\n\n**Watch:** {st.watch}.\n\n**Question:** {st.question}"
        answer.param.update(object=f"**Answer:** {st.answer}", visible=False)
        show.visible = True
        back.disabled = lab.lesson_step <= 1
        nxt.disabled = lab.lesson_step >= len(les.steps)
        box.visible = True

    def reveal(_):
        answer.visible, show.visible = True, False

    show.on_click(reveal)
    back.on_click(lambda e: lab.lesson_move(-1))
    nxt.on_click(lambda e: lab.lesson_move(+1))
    end.on_click(lambda e: lab.close_lesson())
    lab.param.watch(refresh, ["lesson", "lesson_step"])
    refresh()
    return box
