"""Admin pages of the catalog and the shops: Articles, Tags and Shop settings.

Under ``/o/<org_slug>/admin``: the organization is resolved and its scope entered before the view
runs; ``staff_required`` answers 404 to anyone who is not staff here and 403 to a role without
the permission. Objects are looked up inside the scope, so another organization's id is 404.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload
from wtforms.fields.choices import SelectChoice

from comptoir.billing.views import terminal as terminal_views
from comptoir.platform.db import db
from comptoir.platform.errors import DomainError
from comptoir.storefront import services
from comptoir.storefront import shops as shop_services
from comptoir.storefront.forms import (
    ACCESS_LABELS,
    ARTICLE_FIELD_ALIASES,
    BULK_ACTIONS,
    SHOP_FIELD_ALIASES,
    ArticleForm,
    CategoryAddForm,
    ImageForm,
    ShopPageForm,
    TagForm,
    apply_service_error,
)
from comptoir.storefront.models import Article, ArticleTag, Audience, Shop, Tag
from comptoir.storefront.views import checkout_admin
from comptoir.storefront.views.shop import serve_image
from comptoir.tenants.context import current_actor, install_organization_url_handling
from comptoir.tenants.guards import staff_required
from comptoir.tenants.permissions import Permission

blueprint = Blueprint("storefront_admin", __name__, template_folder="../templates")
install_organization_url_handling(blueprint)

ARTICLES_PER_PAGE = 50
BLANK_VARIANT_ROWS = 2
SETTINGS_TABS: list[tuple[str, Any]] = [
    ("page", _l("Page")),
    ("categories", _l("Categories")),
    ("payment", _l("Payment")),
    ("customer-form", _l("Customer form")),
    ("communication", _l("Communication")),
    ("stripe-reader", _l("Stripe reader")),
]
catalog_required = staff_required(Permission.MANAGE_CATALOG)
shops_required = staff_required(Permission.MANAGE_SHOPS)


def _tags() -> list[Tag]:
    return services.list_tags()


def _article_or_404(article_id: int) -> Article:
    article = db.session.execute(
        sa.select(Article)
        .where(Article.id == article_id)
        .options(
            selectinload(Article.variants),
            selectinload(Article.images),
            selectinload(Article.tag_links),
        )
    ).scalar_one_or_none()
    if article is None:
        abort(404)
    return article


def _ids_from_form(name: str) -> list[int]:
    return [int(value) for value in request.form.getlist(name) if value.isdigit()]


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) < 12 else None


# --------------------------------------------------------------------------- articles


@blueprint.get("/articles/")
@catalog_required
def articles() -> Any:
    q = request.args.get("q", "").strip()[:100]
    status = request.args.get("status", "active")
    if status not in {"active", "archived", "all"}:
        status = "active"
    tag_id = _int_arg("tag")
    query = services.search_articles_query(q=q or None, tag_id=tag_id, status=status).options(
        selectinload(Article.tag_links), selectinload(Article.variants)
    )
    total = db.session.execute(
        sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    pages = max(math.ceil(total / ARTICLES_PER_PAGE), 1)
    page = min(max(_int_arg("page") or 1, 1), pages)
    rows = db.session.execute(
        query.limit(ARTICLES_PER_PAGE).offset((page - 1) * ARTICLES_PER_PAGE)
    ).scalars()
    tags = _tags()
    return render_template(
        "storefront/admin/articles.html",
        articles=list(rows),
        tags=tags,
        tags_by_id={tag.id: tag for tag in tags},
        q=q,
        status=status,
        tag_id=tag_id,
        total=total,
        page=page,
        pages=pages,
    )


@blueprint.post("/articles/bulk")
@catalog_required
def articles_bulk() -> Any:
    action = request.form.get("action", "")
    kind, _sep, tag_value = action.partition(":")
    chosen = services.articles_by_ids(_ids_from_form("article_ids"))
    back = url_for("storefront_admin.articles")
    wanted = request.form.get("next", "")
    # Back to the same list (its filters and page), never to another site.
    if wanted.startswith(back) and not urlsplit(wanted).netloc:
        back = wanted
    if kind not in BULK_ACTIONS or not chosen:
        flash(_("Choose some articles and an action."), "error")
        return redirect(back)
    organization = g.organization
    actor = current_actor()
    if kind in {"archive", "restore"}:
        changed = services.set_articles_active(
            organization=organization, actor=actor, articles=chosen, active=kind == "restore"
        )
    else:
        tag = db.session.get(Tag, int(tag_value)) if tag_value.isdigit() else None
        if tag is None:
            abort(404)
        changed = services.tag_articles(
            organization=organization,
            actor=actor,
            articles=chosen,
            tag=tag,
            remove=kind == "remove_tag",
        )
    db.session.commit()
    flash(_("%(count)d article(s) changed.", count=changed), "success")
    return redirect(back)


def _article_form_page(form: ArticleForm, article: Article | None, status: int = 200) -> Any:
    return (
        render_template(
            "storefront/admin/article_form.html",
            form=form,
            article=article,
            image_form=ImageForm(formdata=None),
        ),
        status,
    )


def _add_blank_variant_rows(form: ArticleForm) -> None:
    for _index in range(BLANK_VARIANT_ROWS):
        form.variants.append_entry()


@blueprint.route("/articles/new", methods=["GET", "POST"])
@catalog_required
def article_new() -> Any:
    form = ArticleForm(tags=_tags())
    if request.method == "GET":
        _add_blank_variant_rows(form)
        return _article_form_page(form, None)
    if form.validate():
        try:
            article = services.create_article(
                organization=g.organization, actor=current_actor(), data=form.to_data()
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(
                form, error, aliases=ARTICLE_FIELD_ALIASES, variant_rows=form.variant_rows()
            )
        else:
            db.session.commit()
            flash(_("The article is saved."), "success")
            return redirect(url_for("storefront_admin.article_edit", article_id=article.id))
    return _article_form_page(form, None, 422)


@blueprint.route("/articles/<int:article_id>", methods=["GET", "POST"])
@catalog_required
def article_edit(article_id: int) -> Any:
    article = _article_or_404(article_id)
    if request.method == "GET":
        form = ArticleForm(tags=_tags(), obj=article)
        _add_blank_variant_rows(form)
        return _article_form_page(form, article)
    form = ArticleForm(tags=_tags())
    if form.validate():
        try:
            services.update_article(
                organization=g.organization,
                actor=current_actor(),
                article=article,
                data=form.to_data(),
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(
                form, error, aliases=ARTICLE_FIELD_ALIASES, variant_rows=form.variant_rows()
            )
        else:
            db.session.commit()
            flash(_("The article is saved."), "success")
            return redirect(url_for("storefront_admin.article_edit", article_id=article.id))
    return _article_form_page(form, _article_or_404(article_id), 422)


@blueprint.post("/articles/<int:article_id>/archive")
@catalog_required
def article_archive(article_id: int) -> Any:
    return _set_active(article_id, active=False)


@blueprint.post("/articles/<int:article_id>/restore")
@catalog_required
def article_restore(article_id: int) -> Any:
    return _set_active(article_id, active=True)


def _set_active(article_id: int, *, active: bool) -> Any:
    article = _article_or_404(article_id)
    services.set_articles_active(
        organization=g.organization, actor=current_actor(), articles=[article], active=active
    )
    db.session.commit()
    flash(_("The article is restored.") if active else _("The article is archived."), "success")
    return redirect(url_for("storefront_admin.article_edit", article_id=article_id))


@blueprint.post("/articles/<int:article_id>/images")
@catalog_required
def article_image_upload(article_id: int) -> Any:
    article = _article_or_404(article_id)
    image_form = ImageForm()
    upload = request.files.get("image")
    try:
        if upload is None or not upload.filename:
            raise DomainError(
                _("Choose an image file."), fields={"image": [_("Choose an image file.")]}
            )
        services.add_image(
            organization=g.organization,
            actor=current_actor(),
            article=article,
            stream=upload.stream,
            alt_fr=image_form.alt_fr.data or "",
            alt_en=image_form.alt_en.data or "",
        )
    except DomainError as error:
        db.session.rollback()
        article = _article_or_404(article_id)
        apply_service_error(image_form, error)
        form = ArticleForm(tags=_tags(), formdata=None, obj=article)
        _add_blank_variant_rows(form)
        return (
            render_template(
                "storefront/admin/article_form.html",
                form=form,
                article=article,
                image_form=image_form,
            ),
            422,
        )
    db.session.commit()
    flash(_("The image is added."), "success")
    return redirect(url_for("storefront_admin.article_edit", article_id=article_id) + "#images")


@blueprint.post("/articles/<int:article_id>/images/<int:image_id>/delete")
@catalog_required
def article_image_delete(article_id: int, image_id: int) -> Any:
    article = _article_or_404(article_id)
    services.delete_image(
        organization=g.organization, actor=current_actor(), article=article, image_id=image_id
    )
    db.session.commit()
    flash(_("The image is removed."), "success")
    return redirect(url_for("storefront_admin.article_edit", article_id=article_id) + "#images")


@blueprint.post("/articles/<int:article_id>/images/<int:image_id>/move")
@catalog_required
def article_image_move(article_id: int, image_id: int) -> Any:
    article = _article_or_404(article_id)
    services.move_image(
        organization=g.organization,
        actor=current_actor(),
        article=article,
        image_id=image_id,
        offset=-1 if request.form.get("direction") == "up" else 1,
    )
    db.session.commit()
    return redirect(url_for("storefront_admin.article_edit", article_id=article_id) + "#images")


@blueprint.get("/articles/<int:article_id>/images/<int:image_id>/<size>")
@catalog_required
def article_image(article_id: int, image_id: int, size: str) -> Any:
    article = _article_or_404(article_id)
    image = next((i for i in article.images if i.id == image_id), None)
    if image is None or size not in ("card", "large"):
        abort(404)
    return serve_image(image.storage_key, image.format, image.digest, size, shared=False)


# --------------------------------------------------------------------------- tags


@blueprint.get("/tags/")
@catalog_required
def tags() -> Any:
    counts = dict(
        db.session.execute(
            sa.select(Tag.id, sa.func.count(Article.id))
            .select_from(Tag)
            .outerjoin(ArticleTag, ArticleTag.tag_id == Tag.id)
            .outerjoin(Article, Article.id == ArticleTag.article_id)
            .group_by(Tag.id)
        ).all()
    )
    return render_template("storefront/admin/tags.html", tags=_tags(), counts=counts)


@blueprint.route("/tags/new", methods=["GET", "POST"])
@catalog_required
def tag_new() -> Any:
    form = TagForm()
    if request.method == "POST" and form.validate():
        try:
            services.create_tag(
                organization=g.organization,
                actor=current_actor(),
                name_fr=form.name_fr.data or "",
                name_en=form.name_en.data or "",
                color=form.color.data or "",
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error, aliases={"name": "name_fr"})
        else:
            db.session.commit()
            flash(_("The tag is saved."), "success")
            return redirect(url_for("storefront_admin.tags"))
    status = 422 if request.method == "POST" else 200
    return render_template("storefront/admin/tag_form.html", form=form, tag=None), status


@blueprint.route("/tags/<int:tag_id>", methods=["GET", "POST"])
@catalog_required
def tag_edit(tag_id: int) -> Any:
    tag = db.session.get(Tag, tag_id)
    if tag is None:
        abort(404)
    form = TagForm(obj=tag)
    if request.method == "POST" and form.validate():
        try:
            services.update_tag(
                organization=g.organization,
                actor=current_actor(),
                tag=tag,
                name_fr=form.name_fr.data or "",
                name_en=form.name_en.data or "",
                color=form.color.data or "",
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error, aliases={"name": "name_fr"})
        else:
            db.session.commit()
            flash(_("The tag is saved."), "success")
            return redirect(url_for("storefront_admin.tags"))
    status = 422 if request.method == "POST" else 200
    return render_template("storefront/admin/tag_form.html", form=form, tag=tag), status


@blueprint.post("/tags/<int:tag_id>/delete")
@catalog_required
def tag_delete(tag_id: int) -> Any:
    tag = db.session.get(Tag, tag_id)
    if tag is None:
        abort(404)
    services.delete_tag(organization=g.organization, actor=current_actor(), tag=tag)
    db.session.commit()
    flash(_("The tag is deleted."), "success")
    return redirect(url_for("storefront_admin.tags"))


# --------------------------------------------------------------------------- shops


def _shop_or_404(shop_slug: str) -> Shop:
    shop = shop_services.find_shop(shop_slug)
    if shop is None:
        abort(404)
    return shop


@blueprint.get("/shops/")
@shops_required
def shops() -> Any:
    return render_template(
        "storefront/admin/shops.html", shops=shop_services.list_shops(), access_labels=ACCESS_LABELS
    )


def _shop_page_data(form: ShopPageForm, shop: Shop | None) -> shop_services.ShopData:
    current = shop_services.shop_data(shop) if shop is not None else shop_services.ShopData()
    return shop_services.merge(
        current,
        {
            "slug": form.slug.data or "",
            "name_fr": form.name_fr.data or "",
            "name_en": form.name_en.data or "",
            "intro_fr": form.intro_fr.data or "",
            "intro_en": form.intro_en.data or "",
            "access": form.access.data or "public",
            "password": form.password.data or None,
            "cart_minutes": form.cart_minutes.data,
            "max_cart_renewals": form.max_cart_renewals.data,
        },
    )


@blueprint.route("/shops/new", methods=["GET", "POST"])
@shops_required
def shop_new() -> Any:
    form = ShopPageForm()
    if request.method == "POST" and form.validate():
        try:
            shop = shop_services.create_shop(
                organization=g.organization, actor=current_actor(), data=_shop_page_data(form, None)
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error, aliases=SHOP_FIELD_ALIASES)
        else:
            db.session.commit()
            flash(_("The shop is created. Now choose its categories."), "success")
            return redirect(
                url_for("storefront_admin.shop_settings", shop_slug=shop.slug, tab="categories")
            )
    status = 422 if request.method == "POST" else 200
    return render_template(
        "storefront/admin/shop_page.html", form=form, shop=None, tabs=SETTINGS_TABS, tab="page"
    ), status


@blueprint.route("/shops/<shop_slug>/settings/", defaults={"tab": "page"}, methods=["GET", "POST"])
@blueprint.route("/shops/<shop_slug>/settings/<tab>", methods=["GET", "POST"])
@shops_required
def shop_settings(shop_slug: str, tab: str) -> Any:
    shop = _shop_or_404(shop_slug)
    if tab not in dict(SETTINGS_TABS):
        abort(404)
    if tab == "page":
        return _shop_page_tab(shop)
    if tab == "categories":
        if request.method == "POST":
            abort(405)
        return _categories_tab(shop)
    if tab in checkout_admin.TABS:
        return checkout_admin.settings_tab(shop, tab, SETTINGS_TABS)
    if tab == "stripe-reader":
        return terminal_views.readers_tab(
            render=lambda context, status: (
                render_template(
                    "storefront/admin/shop_stripe_reader.html",
                    shop=shop,
                    tabs=SETTINGS_TABS,
                    tab=tab,
                    **context,
                ),
                status,
            ),
            here=url_for("storefront_admin.shop_settings", shop_slug=shop.slug, tab=tab),
        )
    if request.method == "POST":
        abort(405)
    return render_template(
        "storefront/admin/shop_soon.html", shop=shop, tabs=SETTINGS_TABS, tab=tab
    )


def _shop_page_tab(shop: Shop) -> Any:
    form = ShopPageForm(obj=shop, data={"access": shop.access.value, "password": ""})
    if request.method == "POST" and form.validate():
        try:
            shop_services.update_shop(
                organization=g.organization,
                actor=current_actor(),
                shop=shop,
                data=_shop_page_data(form, shop),
            )
        except DomainError as error:
            db.session.rollback()
            apply_service_error(form, error, aliases=SHOP_FIELD_ALIASES)
        else:
            db.session.commit()
            flash(_("The shop is saved."), "success")
            return redirect(url_for("storefront_admin.shop_settings", shop_slug=shop.slug))
    form.password.data = ""
    status = 422 if request.method == "POST" else 200
    return render_template(
        "storefront/admin/shop_page.html", form=form, shop=shop, tabs=SETTINGS_TABS, tab="page"
    ), status


def _categories_tab(shop: Shop, status: int = 200) -> Any:
    tags = _tags()
    lists = {}
    forms = {}
    for audience in Audience:
        chosen = shop.tag_ids_for(audience)
        lists[audience.value] = [tag for tag_id in chosen for tag in tags if tag.id == tag_id]
        form = CategoryAddForm(formdata=None, data={"audience": audience.value})
        form.tag_id.choices = [
            SelectChoice(tag.id, tag.name) for tag in tags if tag.id not in chosen
        ]
        forms[audience.value] = form
    return render_template(
        "storefront/admin/shop_categories.html",
        shop=shop,
        tabs=SETTINGS_TABS,
        tab="categories",
        lists=lists,
        forms=forms,
    ), status


@blueprint.post("/shops/<shop_slug>/categories")
@shops_required
def shop_categories(shop_slug: str) -> Any:
    shop = _shop_or_404(shop_slug)
    try:
        audience = Audience(request.form.get("audience", ""))
    except ValueError:
        abort(400)
    tag_ids = shop.tag_ids_for(audience)
    action = request.form.get("action", "")
    tag_value = request.form.get("tag_id", "")
    if not tag_value.isdigit():
        flash(_("Choose a tag."), "error")
        return redirect(
            url_for("storefront_admin.shop_settings", shop_slug=shop.slug, tab="categories")
        )
    tag_id = int(tag_value)
    try:
        if action in {"up", "down"}:
            shop_services.move_category(
                organization=g.organization,
                actor=current_actor(),
                shop=shop,
                audience=audience,
                tag_id=tag_id,
                offset=-1 if action == "up" else 1,
            )
        else:
            if action == "add" and tag_id not in tag_ids:
                tag_ids.append(tag_id)
            elif action == "remove":
                tag_ids = [existing for existing in tag_ids if existing != tag_id]
            shop_services.set_categories(
                organization=g.organization,
                actor=current_actor(),
                shop=shop,
                audience=audience,
                tag_ids=tag_ids,
            )
    except DomainError as error:
        db.session.rollback()
        messages = [message for field in error.fields.values() for message in field]
        flash(" ".join(messages) or error.message, "error")
        return _categories_tab(_shop_or_404(shop_slug), status=422)
    db.session.commit()
    flash(_("The categories are saved."), "success")
    return redirect(
        url_for("storefront_admin.shop_settings", shop_slug=shop.slug, tab="categories")
    )
