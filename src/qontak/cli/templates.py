"""``qontak templates`` (a table, with filters) and ``qontak templates show NAME|ID``.

JSON shapes: ``templates`` prints a list of :class:`qontak.Template` objects
(``Template.to_dict()``); ``templates show`` prints one Template object.
"""

from __future__ import annotations

from typing import Annotated

import typer

from qontak import Category, Qontak, Template, TemplateStatus
from qontak.errors import NotFoundError, ValidationError
from qontak.resources.templates import pick_template

from ._app import QontakSubGroup
from ._output import console, paging_status, print_json, template_panel, templates_table
from ._state import command, state

__all__ = ["fill_hints", "register", "resolve_template"]


def resolve_template(client: Qontak, ref: str, language: str | None) -> Template:
    """The template named or identified by ``ref`` (in ``language`` when given).

    A name that exists in several languages needs ``language``; the error says which exist.
    """
    templates = list(client.templates.iter())
    for t in templates:
        if t.id == ref:
            if language is not None and t.language.lower() != language.lower():
                raise ValidationError(
                    "language", f"template {ref} is in {t.language!r}, not {language!r}"
                )
            return t
    named = [t for t in templates if t.name == ref]
    if named:
        languages = sorted({t.language for t in named})
        if language is None and len(languages) > 1:
            # Said in CLI terms here, before the SDK would advise its ``language=`` keyword.
            raise ValidationError(
                "language",
                f"template {ref!r} exists in {', '.join(languages)}; choose one with --language",
                code="ambiguous",
            )
        return pick_template(named, ref, language)
    try:
        return client.templates.get(ref)
    except NotFoundError:
        raise ValidationError("template", f"no template with name or id {ref!r}") from None


def _otp_button(template: Template) -> int | None:
    """The button ``qontak send`` fills with the code of ``template``, when it is an
    authentication template with a single body variable (the case ``send`` builds with
    ``messages.otp``); else None. The same choice ``messages.otp`` makes: the first dynamic or
    code button, else 0."""
    if not template.is_authentication or len(template.placeholders) != 1:
        return None
    index = template.code_button_index
    return 0 if index is None else index


def fill_hints(template: Template) -> list[str]:
    """What ``templates show`` lists under "to fill", with the ``send`` flag for each slot.

    For an authentication template the code goes in ``--var 1`` only: ``send`` copies it into
    the copy-code button itself, so that button is not listed (asking for ``--button 0``
    would make ``send`` build a plain template message instead of the OTP one).
    """
    otp_button = _otp_button(template)
    if otp_button is not None:
        [key] = template.body_placeholders
        slots = [f"body {{{{{key}}}}} (--var {key}=CODE; also fills the copy-code button)"]
    else:
        slots = [f"body {{{{{p}}}}}" for p in template.body_placeholders]
    if template.header_format in ("IMAGE", "VIDEO", "DOCUMENT"):
        flag = f"--header-{template.header_format.lower()}"
        slots.insert(0, f"header {template.header_format} ({flag} URL|FILE)")
    slots += [f"button {i} (--button {i}=VALUE)" for i, b in enumerate(template.buttons)
              if b.is_dynamic and i != otp_button]  # fmt: skip
    return slots


def _matches(t: Template, status: str | None, category: str | None, language: str | None) -> bool:
    if status and t.status != TemplateStatus.of(status):
        return False
    if category and t.category != Category.of(category):
        return False
    return not (language and t.language.lower() != language.lower())


def register(app: typer.Typer) -> None:
    """Add ``templates`` and ``templates show`` to ``app``."""
    group = typer.Typer(
        cls=QontakSubGroup,
        help="WhatsApp templates: list them, or show one with its placeholders.",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    app.add_typer(group, name="templates")

    @group.callback(invoke_without_command=True)
    @command
    def templates(
        ctx: typer.Context,
        status: Annotated[
            str | None, typer.Option("--status", help="APPROVED, PENDING or REJECTED.")
        ] = None,
        category: Annotated[
            str | None,
            typer.Option("--category", help="AUTHENTICATION, MARKETING or UTILITY."),
        ] = None,
        language: Annotated[
            str | None, typer.Option("--language", "-l", help="Language code, e.g. id or en.")
        ] = None,
        search: Annotated[
            str | None, typer.Option("--search", help="Text the template name contains.")
        ] = None,
    ) -> None:
        """List templates (name, language, category, status, header, variables, buttons).

        JSON: a list of Template objects.
        """
        if ctx.invoked_subcommand is not None:
            return
        st = state()
        items: list[Template] = []
        with st.client() as client, paging_status("templates", quiet=st.json) as tick:
            found = client.templates.iter(query=search, status=status, category=category)
            for n, t in enumerate(found, 1):
                tick(n)  # every template fetched counts, matching or not: it shows progress
                if _matches(t, status, category, language):
                    items.append(t)
        if search:
            items = [t for t in items if search.lower() in t.name.lower()]
        if st.json:
            print_json([t.to_dict() for t in items])
            return
        if not items:
            console().print("No templates match.")
            return
        console().print(templates_table(items))

    @group.command("show")
    @command
    def show(
        template: Annotated[str, typer.Argument(metavar="TEMPLATE", help="Template name or id.")],
        language: Annotated[
            str | None,
            # -l as in send/preview, so a command line can be carried over unchanged.
            typer.Option("--language", "-l", help="Language, when the name exists in several."),
        ] = None,
    ) -> None:
        """Show one template with its placeholders marked ⟨{{1}}⟩.

        JSON: one Template object.
        """
        st = state()
        with st.client() as client:
            tpl = resolve_template(client, template, language)
        if st.json:
            print_json(tpl.to_dict())
            return
        out = console()
        out.print(template_panel(tpl))
        out.print(f"id: {tpl.id}", highlight=False)
        slots = fill_hints(tpl)
        out.print("to fill: " + (", ".join(slots) if slots else "nothing"), highlight=False)
