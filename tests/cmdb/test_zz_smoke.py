import zipfile, io
import pytest
from django.core.management import call_command

def test_smoke(demo, tmp_path):
    out = tmp_path / "x.zip"
    call_command("docs_export", "--output", str(out))
    z = zipfile.ZipFile(out)
    names = z.namelist()
    print(len(names)); print("\n".join(names[:80]))
    import shutil; z.extractall("/tmp/export-smoke"); 
