CREATE TABLE "identity_roles" (
	"identity" text NOT NULL,
	"role" text NOT NULL,
	"group_name" text DEFAULT 'default' NOT NULL,
	"granted_by" text DEFAULT 'system' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "identity_roles_identity_role_group_name_pk" PRIMARY KEY("identity","role","group_name")
);
