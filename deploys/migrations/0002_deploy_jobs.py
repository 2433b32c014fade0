# Dry-run jobs become jobs of three kinds (dry run, deploy, restore). The table keeps its name.

import django.db.models.deletion
from django.db import migrations, models

STATES = [('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'),
          ('cancelled', 'Cancelled'), ('incomplete', 'incomplete (machines without a plan are listed)'),
          ('halted', 'halted (too many machines failed; the rest left untouched)'),
          ('interrupted', 'interrupted (the worker stopped; what was done is listed)')]


class Migration(migrations.Migration):

    dependencies = [
        ('changes', '0006_release_base_and_self_deploy'),
        ('deploys', '0001_initial'),
    ]

    operations = [
        migrations.RenameModel('DryRunJob', 'Job'),
        migrations.AlterField(
            model_name='job',
            name='change',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='jobs', to='changes.changerequest'),
        ),
        migrations.AddField(
            model_name='job',
            name='kind',
            field=models.CharField(choices=[('dry-run', 'dry run'), ('deploy', 'Deploy'), ('restore', 'Restore')],
                                   db_index=True, default='dry-run', max_length=10),
        ),
        migrations.AddField(
            model_name='job',
            name='plan_job',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to='deploys.job',
                                    help_text='Deploy: the dry run whose plan it applies; restore: the deploy it undoes'),
        ),
        migrations.AddField(
            model_name='job',
            name='confirm_conflicts',
            field=models.BooleanField(default=False, help_text='Deploy: also overwrite conflicting hand edits'),
        ),
        migrations.AlterField(
            model_name='job',
            name='state',
            field=models.CharField(choices=STATES, db_index=True, default='queued', max_length=20),
        ),
        migrations.AddField(
            model_name='machineplan',
            name='reload_results',
            field=models.JSONField(blank=True, default=list, help_text="Deploys: each reload command's outcome"),
        ),
        migrations.AlterField(
            model_name='machineplan',
            name='status',
            field=models.CharField(choices=[('planned', 'Planned'), ('unreachable', 'Unreachable'), ('error', 'Error'),
                                            ('manual', 'Manual'), ('applied', 'Applied'), ('skipped', 'Skipped'),
                                            ('failed', 'Failed')], max_length=20),
        ),
        migrations.AddConstraint(
            model_name='job',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'deploy'), ('state__in', ['queued', 'running'])),
                                               fields=('change',), name='one_active_deploy_per_change'),
        ),
    ]
