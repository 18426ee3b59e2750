#!/usr/bin/env bash
# Rebuilds the committed front-end assets from the exact versions in package-lock.json.
#
#   attendwise/platform/static/vendor/frontend/   GOV.UK Frontend + MOJ Frontend CSS (system font,
#                                                 no GDS Transport, no crown) and the images it uses
#   attendwise/platform/static/vendor/govuk-frontend/, vendor/moj/   their ES module JavaScript
#   attendwise/platform/static/vendor/htmx/       htmx
#   attendwise/platform/static/vendor/redoc/      ReDoc for /api/v1/docs
#   tests/browser/vendor/                         axe-core for the accessibility checks
#
# Needs Node.js 20+ and npm; only people updating the assets run it (see docs/frontend.md).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
vendor="$root/attendwise/platform/static/vendor"
modules="$here/node_modules"

cd "$here"
npm ci --no-audit --no-fund --ignore-scripts

version() { node -p "const p = require('$modules/$1/package.json'); p.version + ' (' + p.license + ')'"; }

rm -rf "$vendor"
mkdir -p "$vendor/frontend/images" "$vendor/govuk-frontend" "$vendor/moj" "$vendor/htmx" "$vendor/redoc"

npx --no-install sass --pkg-importer=node --load-path=. --style=compressed --no-source-map --quiet-deps \
  src/frontend.scss "$vendor/frontend/frontend.min.css"

# Copy exactly the images the stylesheet refers to, except GOV.UK's crest (reserved for gov.uk;
# the footer component that uses it is never rendered).
grep -o 'url("\{0,1\}images/[^")]*' "$vendor/frontend/frontend.min.css" | sed 's/^url("\{0,1\}images\///' | sort -u |
  while read -r image; do
    if [ "$image" = "govuk-crest.svg" ]; then continue; fi
    cp "$modules/@ministryofjustice/frontend/moj/assets/images/$image" "$vendor/frontend/images/"
  done

cp "$modules/govuk-frontend/dist/govuk/govuk-frontend.min.js" "$vendor/govuk-frontend/"
cp "$modules/@ministryofjustice/frontend/moj/moj-frontend.min.js" "$vendor/moj/"
cp "$modules/htmx.org/dist/htmx.min.js" "$vendor/htmx/"
cp "$modules/htmx.org/LICENSE" "$vendor/htmx/LICENSE.txt"
cp "$modules/redoc/bundles/redoc.standalone.js" "$vendor/redoc/"
cp "$modules/redoc/bundles/redoc.standalone.js.LICENSE.txt" "$vendor/redoc/"
cp "$modules/redoc/LICENSE" "$vendor/redoc/LICENSE.txt"

# Source maps are not shipped; drop the comments that point at them.
sed -i '/^\/\/# sourceMappingURL=/d; s|//# sourceMappingURL=[^ ]*$||' \
  "$vendor/govuk-frontend/govuk-frontend.min.js" "$vendor/moj/moj-frontend.min.js" "$vendor/redoc/redoc.standalone.js"

mkdir -p "$root/tests/browser/vendor"
cp "$modules/axe-core/axe.min.js" "$root/tests/browser/vendor/axe.min.js"
cp "$modules/axe-core/LICENSE" "$root/tests/browser/vendor/axe-core.LICENSE.txt"

cat > "$vendor/VERSIONS.txt" <<VERSIONS
Built by infra/frontend/build.sh from infra/frontend/package-lock.json. Do not edit by hand.
govuk-frontend $(version govuk-frontend)
@ministryofjustice/frontend $(version @ministryofjustice/frontend)
htmx.org $(version htmx.org)
redoc $(version redoc)
sass $(version sass)
VERSIONS
echo "axe-core $(version axe-core)" > "$root/tests/browser/vendor/VERSION.txt"

echo "Built assets:"
(cd "$root" && find attendwise/platform/static/vendor tests/browser/vendor -type f | sort | xargs ls -la)
